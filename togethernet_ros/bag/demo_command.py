"""`togethernet demo`: real footage → real detector_node over DDS → videos, metrics and a report.

Steps: build the foggy two-camera sample bag (vtest.avi, fog from clear to dense), start the
node with config/detect.yaml, replay the bag into it as fast as it accepts frames (so every
frame gets a result), record its outputs, then render an annotated video and a hazy | dehazed
video per camera, the replay metrics and the label-free stability of raw vs smoothed boxes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from togethernet_ros.inference.cli_arguments import parse_positive_int, parse_seconds

HELP = "End-to-end demo on real footage: sample bag, real node over DDS, videos and a report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo options."""
    parser.add_argument("--output", type=Path, default=Path("demo_out"), help="output directory")
    parser.add_argument("--video", type=Path, default=None, help="video (default: vtest.avi)")
    parser.add_argument("--frames", type=parse_positive_int, default=120, help="frames per camera")
    parser.add_argument(
        "--weights",
        default=None,
        help="TogetherNet checkpoint (default: the params file's `weights`, the shipped demo "
        "weights; '' = untrained weights, said plainly)",
    )
    parser.add_argument(
        "--params-file", type=Path, default=None, help="default: config/detect.yaml"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=[384, 512],
        metavar="PX",
        help="network input: one side, or h w; multiples of 128 (default 384 512, which fits "
        "vtest.avi's 4:3 frames without padding)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto (default): a CUDA GPU when torch sees one, else the CPU",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="where vtest.avi is cached")
    parser.add_argument(
        "--startup-timeout",
        type=parse_seconds,
        default=240.0,
        help="seconds the node may take to start (default 240)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; prints what it produced and where."""
    from togethernet_ros.ros.node_settings import default_config_path

    params_file = args.params_file or default_config_path()
    # Checked before the sample bag and the node start, so a typo costs no waiting.
    try:
        if args.output.exists() and not args.output.is_dir():
            raise ValueError(f"--output {args.output} is a file; give a folder")
        _check_input_size(args.input_size)
        if args.video is not None and not args.video.is_file():
            state = "is a folder; give a video file" if args.video.is_dir() else "does not exist"
            raise FileNotFoundError(f"--video {args.video} {state}")
        weights = _demo_weights(args.weights, params_file, _demo_node_values(args))
    except (ValueError, FileNotFoundError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    untrained = weights is None
    try:
        from togethernet_ros.ros.bag_replay import ReplayError, ReplayOptions, run_replay
    except ImportError as error:
        print(
            f"demo: ROS 2 Python packages are missing ({error}); run `make demo`, which sets "
            "them up, or see README",
            file=sys.stderr,
        )
        return 2
    from tqdm import tqdm

    from togethernet_ros.bag.bag_eval import evaluate_camera, load_bag_detections
    from togethernet_ros.bag.bag_problems import BagError
    from togethernet_ros.bag.demo_data import build_demo_bag
    from togethernet_ros.bag.demo_videos import render_demo_videos
    from togethernet_ros.bag.replay_report import replay_summary, write_replay_report
    from togethernet_ros.bag.sample_video import SampleVideoError, fetch_sample_video
    from togethernet_ros.evaluation.atomic_write import write_text_atomically

    started = time.monotonic()
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    try:
        video = args.video or fetch_sample_video(args.cache_dir)
        sample = build_demo_bag(video, out / "sample_bag", max_frames=args.frames, overwrite=True)
        print(
            f"[1/4] sample bag: {sample.path} ({sample.frames} frames × 2 cameras from {video.name}, "
            f"fog β {sample.betas[0]:g} → {sample.betas[-1]:g})"
        )
        overrides = {
            "weights": str(weights) if weights else "",
            "allow_untrained_weights": untrained,
            **_demo_node_values(args),  # also what the params file check counted as set
            "publish_dehazed": True,
        }
        options = ReplayOptions(
            rate=0.0,
            params_file=params_file,
            node_parameters=overrides,
            record_bag=out / "replay_bag",
            record_dehazed=True,
            startup_timeout_s=args.startup_timeout,
            node_log=out / "detector_node.log",
        )
        print(
            f"[2/4] starting detector_node with {params_file} (+ {overrides}) and replaying over DDS"
        )
        with tqdm(total=2 * sample.frames, unit="frame", desc="replay", leave=False) as bar:
            result = run_replay(
                sample.path, options, lambda done, total: bar.update(done - bar.n), log=tqdm.write
            )
    except (SampleVideoError, BagError, ReplayError, ValueError, FileNotFoundError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    try:
        loaded = load_bag_detections(out / "replay_bag", None)
    except BagError as error:  # e.g. the node published nothing before it failed
        print(f"demo: {error} (see {out / 'detector_node.log'})", file=sys.stderr)
        return 1
    print("[3/4] rendering videos")
    videos = render_demo_videos(out / "replay_bag", out, loaded.class_names, fps=sample.fps)
    stability = {
        camera: evaluate_camera(detections, loaded.class_names, None)
        for camera, detections in sorted(loaded.cameras.items())
    }
    weights_text = (
        "UNTRAINED weights (seeded random init, allow_untrained_weights=true): no trained "
        "TogetherNet checkpoint exists yet, so boxes and dehazing are meaningless; they show the "
        "system working end to end, not accuracy"
        if untrained
        else f"weights {weights} (model card: {weights.with_suffix('.md')})"
    )
    settings = {
        "weights": weights_text,
        "node_parameters": overrides,
        "params_file": str(params_file),
    }
    written = write_replay_report(result, out, settings)
    metrics = {
        "weights": weights_text,
        "untrained_weights": untrained,
        "sample": {
            "video": str(video),
            "frames_per_camera": sample.frames,
            "fps": sample.fps,
            "fog_beta": [sample.betas[0], sample.betas[-1]],
        },
        "replay": replay_summary(result, settings),
        "stability_raw_vs_smoothed": stability,
        "videos": [str(v.path) for v in videos],
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    write_text_atomically(out / "metrics.json", json.dumps(metrics, indent=2))
    report = written["markdown"]
    lines = report.read_text().splitlines()
    lines[1:1] = [
        "",
        f"**Weights:** {weights_text}.",
        "",
        "Videos: " + ", ".join(f"[{v.path.name}]({v.path.name})" for v in videos) + ".",
    ]
    lines += ["", "Stability (label-free) of raw vs smoothed detections:", ""]
    lines += [
        "| camera | kind | flicker rate | centre jitter | scale jitter |",
        "|---|---|---|---|---|",
    ]
    for camera, kinds in stability.items():
        for kind, entry in kinds.items():
            c = entry["consistency"]
            lines.append(
                f"| {camera} | {kind} | {c['flicker_rate']} | {c['centre_jitter']} | {c['scale_jitter']} |"
            )
    write_text_atomically(report, "\n".join(lines) + "\n")
    overall = result.trials[0].metrics["overall"]
    print(f"[4/4] done in {metrics['wall_time_s']:.0f} s; outputs in {out}/")
    for item in videos:
        print(f"  video  {item.path}  ({item.frames} frames, {item.size[0]}x{item.size[1]})")
    print(
        f"  report {report}\n  metrics {out / 'metrics.json'}\n  plots  "
        + ", ".join(str(p) for k, p in written.items() if k.endswith("plot"))
    )
    print(f"  bags   {out / 'sample_bag'} (input), {out / 'replay_bag'} (recorded node outputs)")
    print(
        f"  replay: {overall['received']}/{overall['sent']} frames, {overall['throughput_fps']} frames/s, "
        f"latency p50 {overall['latency_ms']['p50']} ms"
    )
    print(f"  {'WARNING: ' if untrained else ''}{weights_text}")
    return 0


def _check_input_size(sides: list[int]) -> None:
    """ValueError unless ``sides`` is an input size the node accepts.

    The node would refuse it only after the sample bag is built and the node has started.
    """
    from togethernet_ros.model import check_input_size

    if len(sides) not in (1, 2):
        raise ValueError(f"--input-size takes one side or h w, got {len(sides)} numbers")
    try:
        check_input_size(sides[0] if len(sides) == 1 else (sides[0], sides[1]))
    except ValueError as error:
        raise ValueError(f"--input-size: {error}") from None


def _demo_node_values(args: argparse.Namespace) -> dict[str, Any]:
    """The node parameters the demo's options set (run()'s overrides), as detector settings.

    `weights` and `allow_untrained_weights` are left out: the demo picks them from --weights
    or the params file (see _params_file_weights).
    """
    return {"input_size": list(args.input_size), "device": args.device}


def _demo_weights(
    requested: str | None, params_file: Path, demo_values: dict[str, Any] | None = None
) -> Path | None:
    """The checkpoint to demo: --weights, else the params file's; None means untrained.

    A missing --weights is an error (running untrained instead would hide the typo); a
    missing default from the params file falls back to untrained weights, said plainly.
    ``demo_values`` are the other node parameters the demo sets (_demo_node_values).
    """
    from togethernet_ros.model.weights_path import resolve_weights_path

    params_weights = _params_file_weights(
        params_file, {**(demo_values or {}), "weights": requested}
    )
    source = "--weights"
    if requested is None:
        source = str(params_file)
        requested = params_weights
    if not requested:
        return None
    path = resolve_weights_path(requested)
    if not path.is_file():
        if source == "--weights":
            raise FileNotFoundError(
                f"--weights {requested} does not exist (--weights '' runs untrained weights)"
            )
        print(
            f"demo: weights {requested!r} (from {source}) "
            "not found; running with UNTRAINED weights instead",
            file=sys.stderr,
        )
        return None
    return path


def _params_file_weights(params_file: Path, demo_values: dict[str, Any]) -> str:
    """The `weights` the demo's node gets from ``params_file`` on top of config/detect.yaml.

    Read as the bag commands and the node read it (ros/params_file.py: every section matching
    the node, rcl's merge order and scalars); a file that sets no `weights` keeps the node's
    default. The parameters the demo sets for the node itself (``demo_values``, None = not set)
    win over the file, as they do for the node, so only a value the node would lack is refused
    (``input_size: []`` is not when the demo passes its own); ValueError names the file and
    the problem.
    """
    from togethernet_ros.bag.detector_options import resolve_detector_settings

    if Path(params_file).is_dir():
        raise ValueError(f"--params-file {params_file} is a folder; give the YAML file")
    if not Path(params_file).is_file():
        raise FileNotFoundError(f"--params-file {params_file} does not exist")
    settings = resolve_detector_settings(
        argparse.Namespace(
            params_file=params_file,
            **demo_values,
            # The demo always sets it, from the weights it picks: the file's value never reaches
            # the node. (A `weights` of None is not set: the demo takes the file's, so it must
            # have one.)
            allow_untrained_weights=True,
        )
    )
    return str(settings["weights"] or "")
