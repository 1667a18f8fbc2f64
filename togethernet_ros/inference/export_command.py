"""`togethernet export`: write the ONNX pair (with / without restoration) and verify it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from togethernet_ros.inference.cli_arguments import (
    add_weights_arguments,
    check_output_file,
    parse_input_size,
    parse_positive_int,
)
from togethernet_ros.inference.command_errors import reports_user_errors

if TYPE_CHECKING:
    import numpy as np

HELP = "export TogetherNet to ONNX (dynamic batch, with and without restoration) and verify it"
LOGGER = logging.getLogger("togethernet_ros")


def _parse_tolerance(text: str) -> float:
    # A negative tolerance would call every export a mismatch (exit 1) after minutes.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `togethernet export`."""
    add_weights_arguments(parser)
    parser.add_argument(
        "--output", required=True, help="NAME.onnx; the detection-only file is NAME.detect.onnx"
    )
    parser.add_argument(
        "--input-size",
        type=parse_input_size,
        default=None,
        help="640 or HxW, e.g. 384x640 (default: the size the checkpoint records, else 640)",
    )
    parser.add_argument(
        "--variant",
        choices=("both", "restore", "detect"),
        default="both",
        help="which files to write (default both)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison"
    )
    parser.add_argument(
        "--int8-calibration",
        metavar="SOURCE",
        help="also write int8 copies (NAME.int8.onnx, ...) for ONNX Runtime on the CPU, "
        "calibrated on frames of this video, image or folder (your cameras' footage)",
    )
    parser.add_argument(
        "--int8-frames",
        type=parse_positive_int,
        default=16,
        help="calibration frames, spread over SOURCE (default 16)",
    )
    parser.add_argument(
        "--int8-fog",
        default="0,0.05,0.1,0.15",
        help="fog densities β each calibration frame is also seen at (comma-separated)",
    )
    parser.add_argument(
        "--tolerance",
        type=_parse_tolerance,
        default=1e-3,
        help="max abs difference allowed in verification (default 1e-3)",
    )


@reports_user_errors("export")
def run(args: argparse.Namespace) -> int:
    """Export, then (unless --no-verify) compare ONNX Runtime with PyTorch; 1 on mismatch."""
    from togethernet_ros.inference.export import export_variants, verify_onnx
    from togethernet_ros.inference.factory import DEFAULT_INPUT_SIZE
    from togethernet_ros.model import load_model_weights, recorded_input_size
    from togethernet_ros.model.file_digest import sha256_of
    from togethernet_ros.model.weights_path import resolve_weights_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not str(args.output).endswith(".onnx"):
        raise ValueError(f"--output must end with .onnx, got {args.output}")
    check_output_file(args.output, "--output")
    # Calibration footage is read first: a wrong or empty source is refused in a second,
    # not after minutes of exporting and verifying.
    calibration = _read_calibration(args) if args.int8_calibration else None
    loaded = load_model_weights(
        args.weights, allow_untrained=args.allow_untrained, num_classes=None
    )
    if args.input_size is None:
        # Like predict and eval: the size the model was trained at, when its checkpoint says.
        args.input_size = recorded_input_size(loaded.metadata) or DEFAULT_INPUT_SIZE
    variants = ("restore", "detect") if args.variant == "both" else (args.variant,)
    untrained = bool(loaded.metadata.get("untrained"))
    written = export_variants(
        loaded.model,
        Path(args.output),
        args.input_size,
        class_names=loaded.class_names,
        variants=variants,
        opset=args.opset,
        metadata={
            "untrained": "1" if untrained else "0",
            "weights": Path(args.weights).name if args.weights else "",
            # Lets a detector given these weights and this file check that they belong together.
            "weights_sha256": sha256_of(resolve_weights_path(args.weights)) if args.weights else "",
        },
    )
    if len(written) == 1:
        _warn_about_a_stale_partner(next(iter(written.values())))
    height, width = args.input_size
    status = 0
    for variant, path in written.items():
        size_mb = path.stat().st_size / 1e6
        print(
            f"{variant:8s} {path}  ({size_mb:.1f} MB, input Nx3x{height}x{width}, opset {args.opset})"
        )
        if args.no_verify:
            continue
        errors = verify_onnx(loaded.model, path, batch_sizes=(1, 2))
        worst = max(errors.values())
        detail = ", ".join(f"{name} {error:.2e}" for name, error in errors.items())
        verdict = "OK" if worst <= args.tolerance else "MISMATCH"
        print(f"         onnxruntime vs pytorch max |error| {worst:.2e} [{verdict}] ({detail})")
        if worst > args.tolerance:
            status = 1
    if calibration is not None and status == 0:
        status = _write_int8(args, written, *calibration)
    return status


def _warn_about_a_stale_partner(path: Path) -> None:
    """Warn when the other file of the pair next to a one-variant export is from another one.

    A detector reads both files of the pair and refuses them when they disagree; a file from an
    earlier export of other weights would otherwise be found only when the detector starts.
    """
    from togethernet_ros.inference.export import onnx_variant_paths, read_onnx_info

    partner = next(other for other in onnx_variant_paths(path) if other != path)
    if not partner.is_file():
        return
    ours = read_onnx_info(path)
    try:
        theirs = read_onnx_info(partner)
    except ValueError as error:
        problem = str(error)
    else:
        hashes = [info.metadata.get("weights_sha256", "")[:16] for info in (ours, theirs)]
        differences = [
            f"{what} {mine} vs {other}"
            for what, mine, other in (
                ("input", ours.input_size, theirs.input_size),
                ("classes", list(ours.class_names), list(theirs.class_names)),
                # As the detector compares them: only where both files record one.
                ("weights sha256", *(hashes if all(hashes) else ("", ""))),
            )
            if mine != other
        ]
        if not differences:
            return
        problem = "it is from another export (" + ", ".join(differences) + ")"
    LOGGER.warning(
        "%s, next to %s, was not written by this export: %s. A detector given either file "
        "refuses the pair; delete %s or export --variant both",
        partner,
        path,
        problem,
        partner.name,
    )


def _read_calibration(args: argparse.Namespace) -> tuple[list[np.ndarray], list[float]]:
    """The calibration frames of --int8-calibration and the densities of --int8-fog."""
    from togethernet_ros.inference.int8_quantization import calibration_frames

    betas = []
    for value in (item.strip() for item in args.int8_fog.split(",")):
        if not value:
            continue
        try:
            beta = float(value)
        except ValueError:
            raise ValueError(f"--int8-fog: {value!r} is not a number") from None
        if not beta >= 0:
            raise ValueError(f"--int8-fog: fog densities must be >= 0, got {value}")
        betas.append(beta)
    return calibration_frames(args.int8_calibration, args.int8_frames), betas or [0.0]


def _write_int8(
    args: argparse.Namespace,
    written: dict[str, Path],
    frames: list[np.ndarray],
    betas: list[float],
) -> int:
    """Quantize every written file and report how close each int8 copy stays."""
    from togethernet_ros.inference.int8_quantization import (
        calibration_inputs,
        compare_int8,
        int8_path,
        quantize_int8,
    )

    inputs = calibration_inputs(frames, args.input_size, betas)
    print(f"int8     calibrating on {len(frames)} frames × {len(betas)} fog densities")
    for variant, path in written.items():
        target = quantize_int8(path, int8_path(path), inputs)
        check = compare_int8(path, target, inputs)
        print(
            f"{variant:8s} {target}  ({target.stat().st_size / 1e6:.1f} MB, int8) vs float32: "
            f"score error p50 {check['score_error_p50']:.3f} / p99 {check['score_error_p99']:.3f}, "
            f"{check['detections_found_again']:.1%} of "
            f"{int(check['detections_compared'])} detections found again"
        )
    return 0
