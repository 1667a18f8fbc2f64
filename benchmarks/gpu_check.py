"""GPU check for the inference backends: correctness against the CPU, then fp16 speed.

Standalone: needs only torch, numpy, onnx and onnxruntime(-gpu) next to this repository (no
OpenCV, no test files, no weights: it builds a model with informative random weights).

    python benchmarks/gpu_check.py --out gpu_check.json            # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --size 256 --out x  # dry run of the script

Checks, each against the CPU fp32 PyTorch result on the same pre-processed batch:
  torch CUDA fp32 (TF32 off), torch CUDA fp16, ONNX Runtime CUDA EP (fp32), ONNX Runtime
  TensorRT EP (fp16); missing providers are skipped with a message. Then times fp16
  throughput at batch 16 and batch-1 latency at 640x640 (end-to-end detect(), frames of the
  input size, restoration off and on). Prints a compact table and writes JSON to --out.
Runtime budget: under 4 minutes (TensorRT is skipped when too little time is left for its
engine build; the ONNX Runtime checks use the detection-only graph to need one build only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference.detector_base import STRIDES
from togethernet_ros.inference.export import export_variants
from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.int8_quantization import calibration_frames
from togethernet_ros.model import DEFAULT_CLASS_NAMES, build_model, save_checkpoint
from togethernet_ros.model.checkpoint import load_checkpoint
from togethernet_ros.model.informative_init import fill_informative
from togethernet_ros.pipeline.latency_report import UNRELIABLE_MARK, percentile_stats, sample_needs
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.postprocess import postprocess
from togethernet_ros.vision.preprocess import preprocess_batch

BUDGET_S = 200.0  # benchmarks/gpu_session.sh gives this script 240 s by default
# Max |error| allowed per mode: probabilities, box corners (input pixels), dehazed output
# (normalised units, one grey level = 0.0175).
ONE_GREY_LEVEL = 1 / 255 / 0.224 + 1e-6
TOLERANCE = {
    "fp32": {"probabilities": 2e-3, "box_px": 0.1, "dehazed": 2e-3},
    "fp16": {"probabilities": 3e-2, "box_px": 2.0, "dehazed": 6e-2},
}


def camera_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """BGR frames with gradients and solid blocks (numpy only)."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        cols = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        tint = rng.uniform(40, 200, 3).astype(np.float32)
        frame = (tint * (0.5 + 0.5 * rows) * (0.6 + 0.4 * cols)).astype(np.uint8)
        for _ in range(10):
            y, x = int(rng.integers(0, height - 40)), int(rng.integers(0, width - 40))
            h, w = int(rng.integers(20, height // 3)), int(rng.integers(20, width // 3))
            frame[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        frames.append(frame)
    return frames


def max_errors(outputs: tuple, reference: tuple, size: tuple[int, int]) -> dict[str, float]:
    """What the detector's users see, not raw logits (a trained model's logits reach ±20, where
    fp16 rounding alone is 1e-2): probabilities (objectness and classes), box corners in input
    pixels for the anchors the reference scores >= 0.05, the dehazed image (normalised units),
    and for information the raw maps."""
    maps, dehazed = outputs
    ref_maps, ref_dehazed = reference
    errors = {
        "raw_maps": max(
            float((got.float().cpu() - want).abs().max())
            for got, want in zip(maps, ref_maps, strict=True)
        )
    }
    decoded = decode_outputs([m.float().cpu() for m in maps], STRIDES, size)
    ref_decoded = decode_outputs(ref_maps, STRIDES, size)
    errors["probabilities"] = float((decoded[..., 4:] - ref_decoded[..., 4:]).abs().max())
    ref_scores = ref_decoded[..., 4] * ref_decoded[..., 5:].max(-1).values
    candidates = ref_scores >= 0.05
    errors["box_px"] = (
        float((decoded[..., :4] - ref_decoded[..., :4])[candidates].abs().max())
        if candidates.any()
        else 0.0
    )
    if dehazed is not None:
        errors["dehazed"] = float((dehazed.float().cpu() - ref_dehazed).abs().max())
    return errors


def detection_agreement(
    detections: list, reference: list, conf_threshold: float, box_tolerance: float = 2.0
) -> float:
    """Fraction of reference detections found again (same class, box within tolerance px).

    Reference boxes scoring within 0.02 of the threshold are left out: a rounding difference
    may legitimately move them to either side of it.
    """
    found = total = 0
    for mine, theirs in zip(detections, reference, strict=True):
        clear = theirs.scores >= conf_threshold + 0.02
        total += int(clear.sum())
        for box, class_id in zip(theirs.boxes[clear], theirs.class_ids[clear], strict=True):
            same = mine.class_ids == class_id
            if same.any() and np.abs(mine.boxes[same] - box).max(axis=1).min() <= box_tolerance:
                found += 1
    return found / total if total else 1.0


def mixed_sizes_check(detector, frames: list, weights: Path, size: tuple, report: dict) -> None:
    """Cameras of different resolutions in one batch, twice, against the CPU.

    On a GPU this exercises one letterbox graph per resolution, the copies into batch slots
    and slot reuse across batches (DevicePipeline), which same-size frames do not.
    """
    if detector is None:
        return
    import cv2

    base = frames[0]
    mixed = [
        base,
        cv2.resize(base, (1280, 720)),
        np.ascontiguousarray(base[: base.shape[0] // 2]),
        cv2.resize(base, (640, 360)),
    ]
    cpu = create_detector(str(weights), input_size=size, conf_threshold=0.3, nms_threshold=0.45)
    expected = [result.detections for result in cpu.detect(mixed)]
    rounds = [[r.detections for r in detector.detect(order)] for order in (mixed, mixed[::-1])]
    # Three of the frames letterboxed ahead (as the node does while a batch waits), each by
    # its resolution's letterbox graph into a per-camera buffer, then copied into its slot.
    for camera, frame in enumerate(mixed[:3]):
        detector.prepare_ahead(camera, frame)
    prepared = [r.detections for r in detector.detect(mixed)]
    agreement = min(
        detection_agreement(rounds[0], expected, 0.3),
        detection_agreement(rounds[1][::-1], expected, 0.3),
        detection_agreement(prepared, expected, 0.3),
    )
    ok = agreement >= 0.99
    report["checks"].append(
        {
            "name": "mixed camera sizes, also prepared ahead (torch fp32)",
            "detections_found_again": agreement,
            "ok": ok,
        }
    )
    print(
        f"{'OK  ' if ok else 'FAIL'} mixed camera sizes, two batch orders and prepared ahead: "
        f"{agreement:.1%}"
    )


def device_nms_check(name: str, detector, frames: list, report: dict) -> None:
    """NMS decided inside the model's graph (`device_nms`, on for CUDA) against the host's
    greedy NMS of the very same packed anchors: the detections must be identical.

    At the tracker's low threshold (0.1) and a batch of 4, where many overlapping candidates
    make long suppression chains most likely, then at other thresholds on the same captured
    graph (they must reach it as tensor values, not as constants of the capture). It only
    counts when the device decided: every image settled and no image with more candidates
    than were packed (both would send the two paths to the same host code).
    """
    if detector is None or not getattr(detector, "_pipeline", None):
        return
    if not detector._pipeline.device_nms:
        report["skipped"].append(f"device NMS ({name}): off on this device")
        print(f"SKIP device NMS ({name}): off on this device")
        return
    from togethernet_ros.vision.postprocess import postprocess_scored

    saved = detector.conf_threshold, detector.nms_threshold
    for conf, nms in ((0.1, 0.45), (0.3, 0.65)):
        detector.conf_threshold, detector.nms_threshold = conf, nms
        try:
            prepared, infos = detector._prepare(frames[:4])
            scored, _ = detector._infer(prepared, False)
            settled = int(scored.suppression.settled.sum())
            overflow = bool((scored.top[:, -1, 4] >= conf).any())
            decided = postprocess_scored(scored, infos, conf, nms)
            on_host = postprocess_scored(scored._replace(suppression=None), infos, conf, nms)
        finally:
            detector.conf_threshold, detector.nms_threshold = saved
        same = all(
            np.array_equal(mine.boxes, theirs.boxes)
            and np.array_equal(mine.scores, theirs.scores)
            and np.array_equal(mine.class_ids, theirs.class_ids)
            for mine, theirs in zip(decided, on_host, strict=True)
        )
        boxes = sum(len(found) for found in on_host)
        ok = same and boxes > 0 and settled == len(infos) and not overflow
        label = f"device NMS = host NMS ({name}, conf {conf}, NMS {nms})"
        report["checks"].append(
            {
                "name": label,
                "identical": same,
                "images_settled": f"{settled}/{len(infos)}",
                "more_candidates_than_packed": overflow,
                "boxes": boxes,
                "ok": ok,
            }
        )
        print(
            f"{'OK  ' if ok else 'FAIL'} {label}: {'identical' if same else 'DIFFERENT'}, "
            f"{boxes} boxes, {settled}/{len(infos)} settled"
            + (", more candidates than packed (not decided on the device)" if overflow else "")
        )


def time_detect(detector, frames: list, restore: bool, iterations: int, device: str) -> dict:
    for _ in range(3):
        detector.detect(frames, restore=restore)
    synchronize(device)
    latencies = []
    for _ in range(iterations):
        started = time.perf_counter()
        detector.detect(frames, restore=restore)
        synchronize(device)
        latencies.append(time.perf_counter() - started)
    return timing_entry(np.array(latencies) * 1e3, len(frames), restore)


def timing_entry(latencies_ms: np.ndarray, batch: int, restore: bool) -> dict:
    """One timing row: p50, p95 with the number of timed calls (``samples``) and whether they
    are enough for a p95 (``p95_reliable``: 20; batch 16 times only a third of --iterations)."""
    stats = percentile_stats(latencies_ms, (50, 95), include_max=False)
    return {
        "batch": batch,
        "restore": restore,
        "p50_ms": stats["p50"],
        "p95_ms": stats["p95"],
        "samples": stats["count"],
        "percentile_method": stats["percentile_method"],
        "p95_reliable": stats["p95_reliable"],
        "images_per_s": batch / stats["p50"] * 1e3,
    }


def timing_line(name: str, entry: dict) -> str:
    """The printed TIME line: p95 marked ``*`` when from fewer calls than a p95 needs."""
    mark = " " if entry["p95_reliable"] else UNRELIABLE_MARK
    restore = "on " if entry["restore"] else "off"
    return (
        f"TIME {name:12s} batch {entry['batch']:2d} restore {restore} "
        f"p50 {entry['p50_ms']:7.2f} ms  p95 {entry['p95_ms']:7.2f}{mark}ms "
        f"(n={entry['samples']:3d})  {entry['images_per_s']:8.1f} img/s"
    )


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON report path")
    parser.add_argument("--device", default="cuda", help="cuda[:N], or cpu for a dry run")
    parser.add_argument("--size", type=int, default=640, help="square input size (x128)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument(
        "--weights", help="a trained checkpoint (default: informative random weights)"
    )
    parser.add_argument("--source", help="take 16 frames from this image, folder or video")
    parser.add_argument(
        "--compile",
        metavar="MODE",
        help="last, check the torch fp16 detector under torch.compile in this mode and time "
        "batch 1 (compiles batch 1 and 4 first: a minute or more; raise --budget-s)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=BUDGET_S,
        help="timings start only within this many seconds of the start",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict = {"checks": [], "timings": [], "skipped": []}
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("torch sees no CUDA device: nothing to check")
        report["skipped"].append("no CUDA device visible to torch")
        Path(args.out).write_text(json.dumps(report, indent=1))
        return 1
    # Correctness first, in true fp32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import onnxruntime as ort

    report["environment"] = {
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else "none",
    }
    print(f"environment: {report['environment']}")
    size = (args.size, args.size)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    if args.weights:
        model = load_checkpoint(args.weights).model.float().eval()
        weights = Path(args.weights)
    else:
        model = fill_informative(build_model())
        weights = save_checkpoint(work / "informative.pth", model, DEFAULT_CLASS_NAMES)
    report["weights"] = str(args.weights or "informative random")
    report["frames"] = str(args.source or "synthetic 1280x720")
    video_frames = None
    if args.source:
        found = calibration_frames(args.source, 16)
        video_frames = [found[index % len(found)] for index in range(16)]
    frames = video_frames[::4] if video_frames else camera_frames(4, 720, 1280)
    batch, infos = preprocess_batch(frames, size, "bgr")
    with torch.inference_mode():
        cpu_output = model(batch, restore=True)
    reference = (list(cpu_output.maps), cpu_output.dehazed)
    cpu_detections = postprocess(decode_outputs(reference[0], STRIDES, size), infos, 0.3, 0.45)
    print(f"CPU reference: {sum(len(d) for d in cpu_detections)} detections at conf 0.3")

    if device.startswith("cuda"):
        on_device, _ = preprocess_batch(frames, size, "bgr", device=device)
        error = float((on_device.cpu() - batch).abs().max())
        # Float (GPU) against fixed-point (CPU) bicubic: within 1 grey level on synthetic
        # frames, 2 on real footage (measured on an H100); normalised by the smallest std.
        report["checks"].append(
            {"name": "pre-processing on GPU", "max_error": error, "ok": error <= 2 * ONE_GREY_LEVEL}
        )

    cpu_dehazed = [
        result.dehazed
        for result in create_detector(
            str(weights), input_size=size, conf_threshold=0.3, nms_threshold=0.45
        ).detect(frames, restore=True)
    ]

    def check(name: str, mode: str, restore: bool = True, **options: object) -> object | None:
        try:
            detector = create_detector(
                str(weights),
                device=device,
                input_size=size,
                conf_threshold=0.3,
                nms_threshold=0.45,
                cache_dir=str(work / "cache"),
                max_batch_size=16,
                **options,
            )
        except Exception as error:  # missing provider / library: report and go on
            report["skipped"].append(f"{name}: {error}")
            print(f"SKIP {name}: {error}")
            return None
        with torch.inference_mode():
            outputs = detector._forward(batch.to(detector.preprocess_device), restore=restore)
        errors = max_errors(outputs, reference, size)
        results = detector.detect(frames, restore=restore)
        agreement = detection_agreement([r.detections for r in results], cpu_detections, 0.3)
        dehazed_error = (
            max(
                int(np.abs(result.dehazed.astype(int) - expected.astype(int)).max())
                for result, expected in zip(results, cpu_dehazed, strict=True)
            )
            if restore
            else -1
        )
        needed = 0.99 if mode == "fp32" else 0.9
        ok = agreement >= needed and all(
            errors[key] <= limit for key, limit in TOLERANCE[mode].items() if key in errors
        )
        report["checks"].append(
            {
                "name": name,
                "backend": detector.backend,
                "max_error": errors,
                "detections_found_again": agreement,
                "dehazed_max_level_diff": dehazed_error,
                "ok": ok,
            }
        )
        print(
            f"{'OK  ' if ok else 'FAIL'} {name:26s} {detector.backend:44s} "
            f"prob {errors['probabilities']:.1e} box {errors['box_px']:.2f}px "
            f"raw {errors['raw_maps']:.1e}  detections {agreement:.1%}  "
            f"dehazed {dehazed_error} levels"
        )
        return detector

    detectors = {}
    detectors["torch fp32"] = check("torch fp32 (TF32 off)", "fp32", precision="fp32")
    detectors["torch fp16"] = (
        check("torch fp16", "fp16", precision="fp16") if device != "cpu" else None
    )
    mixed_sizes_check(detectors.get("torch fp32"), frames, weights, size, report)
    for name in ("torch fp32", "torch fp16"):
        device_nms_check(name, detectors.get(name), frames, report)
    speed_frames = video_frames or camera_frames(16, *size)

    def timings(name: str, plans: tuple[tuple[int, bool], ...]) -> None:
        detector = detectors.get(name)
        if detector is None:
            return
        for batch_size, restore in plans:
            if time.perf_counter() - started > args.budget_s:
                report["skipped"].append(f"timing {name} b{batch_size}: out of time")
                continue
            iterations = args.iterations if batch_size == 1 else max(5, args.iterations // 3)
            if device == "cpu":
                iterations = 2
            entry = {
                "name": name,
                "backend": detector.backend,
                **time_detect(detector, speed_frames[:batch_size], restore, iterations, device),
            }
            report["timings"].append(entry)
            print(timing_line(name, entry))

    # Speed first where it matters most (fp16 on the GPU; TF32 is irrelevant there). A CPU dry
    # run only exercises the timing code.
    if device == "cpu":
        timings("torch fp32", ((1, False),))
    else:
        timings("torch fp16", ((16, False), (16, True), (1, False), (1, True)))

    # ONNX Runtime: the detection-only graph (one export, one TensorRT engine).
    providers = ort.get_available_providers()
    onnx_path = work / "model.onnx"
    if device.startswith("cuda"):
        # The CUDA EP links cuBLAS/cuRAND and dlopens cuDNN; torch's import has loaded the
        # first two from the pip-installed CUDA libraries, this loads cuDNN the same way.
        report["environment"]["cudnn"] = torch.backends.cudnn.version()
    if device == "cpu" or "CUDAExecutionProvider" in providers:
        export_variants(
            model, onnx_path, size, class_names=DEFAULT_CLASS_NAMES, variants=("detect",)
        )
        # Hide TensorRT for this check so that the CUDA EP itself is measured.
        real_available = ort.get_available_providers
        ort.get_available_providers = lambda: [p for p in real_available() if "Tensorrt" not in p]
        try:
            detectors["ort cuda"] = check(
                "onnxruntime CUDA EP fp32",
                "fp32",
                restore=False,
                backend="onnxruntime",
                onnx_path=str(onnx_path),
                precision="fp32",
            )
        finally:
            ort.get_available_providers = real_available
        timings("ort cuda", ((16, False), (1, False)))
    else:
        report["skipped"].append("onnxruntime CUDA EP not in this build")
        print("SKIP onnxruntime CUDA/TensorRT: not in this build (install onnxruntime-gpu)")
    if "TensorrtExecutionProvider" in providers and device.startswith("cuda"):
        if time.perf_counter() - started > args.budget_s - 75:
            report["skipped"].append("TensorRT: not enough time left for the engine build")
            print("SKIP TensorRT: not enough time left for the engine build")
        else:
            detectors["ort trt"] = check(
                "onnxruntime TensorRT fp16",
                "fp16",
                restore=False,
                backend="onnxruntime",
                onnx_path=str(onnx_path),
                precision="fp16",
            )
            trt = detectors["ort trt"]
            if trt is not None and "Tensorrt" not in trt.backend:
                # The chain fell back (TensorRT libraries missing): that check ran the CUDA EP.
                report["skipped"].append(f"TensorRT EP did not initialise; ran {trt.backend}")
                print(f"SKIP TensorRT timings: the EP did not initialise ({trt.backend})")
            else:
                timings("ort trt", ((16, False), (1, False)))
    elif device.startswith("cuda"):
        report["skipped"].append("onnxruntime TensorRT EP not available")
        print("SKIP onnxruntime TensorRT EP: not available")
    # Last, so that a slow compilation cannot cost the eager and ONNX Runtime figures.
    if args.compile and device != "cpu":
        detectors["torch fp16 compiled"] = check(
            f"torch fp16 compiled ({args.compile})",
            "fp16",
            restore=False,
            precision="fp16",
            compile_mode=args.compile,
        )
        timings("torch fp16 compiled", ((1, False),))
    if any(not entry["p95_reliable"] for entry in report["timings"]):
        print(f"* p95 from too few timed calls ({sample_needs((95,))}; raise --iterations)")
    report["elapsed_s"] = time.perf_counter() - started
    report["all_ok"] = all(check["ok"] for check in report["checks"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(
        f"{'ALL OK' if report['all_ok'] else 'SOME CHECKS FAILED'} in {report['elapsed_s']:.0f} s "
        f"-> {args.out}"
    )
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
