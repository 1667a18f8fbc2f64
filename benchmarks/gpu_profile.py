"""Where detect() spends its time on a GPU: pre-processing, forward, post-processing.

    python benchmarks/gpu_profile.py --out profile.json

Splits `Detector.last_timings` (wall time per stage, synchronised by the stage boundaries'
host copies) for batch 1 and 16 at 640x640, fp16, restoration off (the trained rows also on), with many candidate boxes
(conf 0.3 on random weights) and few (conf 0.95), and times the graphed model stage alone
(normalise → forward → decode → score). With `--weights` and `--source` (an image, a folder or
a video) it adds the same rows for trained weights on real frames, an operator table of
where batch-1 host time goes and a kernel table of the batch-1 forward's device time
(`.kernels.txt`). Without `--compile` it adds batch-1 rows with the modules in their published
forms (`fuse_modules: false`) and fused without grouped sampling (`grouped_sampling: false`);
`--compile MODE` times the rows under `torch.compile`.
Also re-checks GPU pre-processing against the CPU letterbox.

    python benchmarks/gpu_profile.py --out profile.json \
        [--weights models/togethernet_vtest_384.pt --source frame.jpg --input-size 384 640]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference import create_detector
from togethernet_ros.inference.int8_quantization import calibration_frames
from togethernet_ros.vision.preprocess import preprocess_batch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def profile_stages(
    detector, images: list, iterations: int, device: str = "cuda", restore: bool = False
) -> dict:
    """Median stage times of detect() and the number of boxes found.

    With ``restore`` the postprocess stage includes turning the restoration output into
    dehazed images at the source size (`vision/dehazed.py`)."""
    for _ in range(min(5, iterations)):
        detector.detect(images, restore=restore)
    stages = {"preprocess": [], "forward": [], "postprocess": [], "total": []}
    boxes = 0
    for _ in range(iterations):
        synchronize(device)
        started = time.perf_counter()
        results = detector.detect(images, restore=restore)
        stages["total"].append(time.perf_counter() - started)
        for key in ("preprocess", "forward", "postprocess"):
            stages[key].append(detector.last_timings[key])
        boxes = sum(len(r.detections) for r in results)
    # The graphed model stage alone, on the canvas the last detect() left behind.
    model_stage = []
    for _ in range(iterations):
        synchronize(device)
        started = time.perf_counter()
        detector._pipeline.infer(
            len(images),
            restore,
            detector.color_order,
            thresholds=(detector.conf_threshold, detector.nms_threshold),
        )
        synchronize(device)
        model_stage.append(time.perf_counter() - started)
    return {
        "batch": len(images),
        "restore": restore,
        "boxes": boxes,
        # False where a CUDA graph capture failed and the stage fell back to eager.
        "graphed_stages": dict(detector._pipeline.graphed_stages),
        "model_stage_synced_ms": 1e3 * float(np.median(model_stage)),
        **{f"{k}_ms": 1e3 * float(np.median(v)) for k, v in stages.items()},
    }


def upload_times(frames: list, iterations: int, device: str) -> dict:
    """Median ms to copy the frames to the device one by one, from pageable and from pinned
    host memory (synchronised after the last), as `detect()`'s upload stage does."""
    if not device.startswith("cuda"):
        return {}
    pinned = [torch.from_numpy(frame).pin_memory() for frame in frames]
    times: dict[str, list[float]] = {"pageable_ms": [], "pinned_ms": []}
    for _ in range(iterations):
        for key, sources in (("pageable_ms", frames), ("pinned_ms", pinned)):
            torch.cuda.synchronize()
            started = time.perf_counter()
            for source in sources:
                tensor = torch.from_numpy(source) if isinstance(source, np.ndarray) else source
                tensor.to(device, non_blocking=key == "pinned_ms")
            torch.cuda.synchronize()
            times[key].append(time.perf_counter() - started)
    return {
        "frames": len(frames),
        "frame_shape": list(frames[0].shape),
        **{key: 1e3 * float(np.median(values)) for key, values in times.items()},
    }


def kernel_table(model: torch.nn.Module, input_size: tuple[int, int], device: str) -> str:
    """Where the batch-1 forward pass spends device time, kernel by kernel (eager, no graph).

    Inside a CUDA graph the profiler sees one launch; run eagerly, each kernel is attributed.
    """
    parameter = next(model.parameters())
    batch = torch.rand(1, 3, *input_size, device=parameter.device, dtype=parameter.dtype)
    batch = batch.contiguous(memory_format=torch.channels_last)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.inference_mode():
        for _ in range(3):
            model(batch, restore=False)
        synchronize(device)
        with torch.profiler.profile(activities=activities) as profiler:
            for _ in range(5 if device.startswith("cuda") else 1):
                model(batch, restore=False)
            synchronize(device)
    sort_by = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=40)


def module_form_rows(
    args: argparse.Namespace, frames: list, device: str, precision: str
) -> list[dict]:
    """Batch-1 rows for the A/B of `model_fusion`: published forms, then fused forms with the
    deformable convolution's grid_sample over all channels at once (no channel groups)."""
    from togethernet_ros.inference.deformable_fusion import FusedDeformConv2d
    from togethernet_ros.inference.torch_detector import TorchDetector
    from togethernet_ros.model import load_model_weights

    loaded = load_model_weights(args.weights, allow_untrained=False, num_classes=None)
    rows = []
    for fuse_modules, grouped in ((False, None), (True, False)):
        detector = TorchDetector(
            loaded.model, loaded.class_names, device=device, precision=precision,
            input_size=tuple(args.input_size), conf_threshold=0.3, nms_threshold=0.45,
            max_batch_size=1, fuse_modules=fuse_modules,
        )  # fmt: skip
        for module in detector.model.modules():
            if isinstance(module, FusedDeformConv2d) and grouped is False:
                module.channels_per_thread = module.offset_mask.in_channels  # one group
        row = profile_stages(detector, frames, args.iterations, device)
        detector.close()
        rows.append(
            {
                **row,
                "weights": args.weights,
                "frames": args.source,
                "frame_size": list(frames[0].shape[1::-1]),
                "input_size": args.input_size,
                "fuse_modules": fuse_modules,
                "grouped_sampling": grouped,
            }
        )
    return rows


def host_nms_rows(
    args: argparse.Namespace, frames: list, device: str, precision: str, trained_row: dict
) -> list[dict]:
    """The A/B of `device_nms`: the trained rows' batches, restoration off, with thresholding
    and NMS on the host (the product decides them inside the model's graph on a GPU)."""
    from togethernet_ros.inference.torch_detector import TorchDetector
    from togethernet_ros.model import load_model_weights

    loaded = load_model_weights(args.weights, allow_untrained=False, num_classes=None)
    detector = TorchDetector(
        loaded.model, loaded.class_names, device=device, precision=precision,
        input_size=tuple(args.input_size), conf_threshold=args.conf, nms_threshold=0.45,
        max_batch_size=max(args.batches), device_nms=False,
    )  # fmt: skip
    rows = []
    for batch in args.batches:
        row = profile_stages(detector, frames[:batch], args.iterations, device)
        rows.append({**row, **trained_row, "device_nms": False})
    detector.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--weights", help="trained checkpoint: adds rows on real frames")
    parser.add_argument("--source", help="image, folder or video for the trained-weights rows")
    parser.add_argument(
        "--input-size", type=int, nargs=2, default=[640, 640], help="trained rows: H W"
    )
    parser.add_argument("--trained-only", action="store_true", help="skip the random rows")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 16], help="trained rows: batch sizes"
    )
    parser.add_argument(
        "--compile",
        metavar="MODE",
        help="trained rows: torch.compile the model in this mode first (e.g. default, "
        "max-autotune-no-cudagraphs; not reduce-overhead, the pipeline captures graphs itself)",
    )
    parser.add_argument(
        "--frame-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        help="trained rows: resize the frames to this size (e.g. 1280 720, a camera's)",
    )
    parser.add_argument(
        "--conf",
        type=float,
        default=0.3,
        help="trained rows: score threshold (the node's detector runs at the tracker's 0.1)",
    )
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the plumbing")
    args = parser.parse_args()
    device = args.device
    precision = "fp16" if device.startswith("cuda") else "fp32"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(4)]
    cpu, _ = preprocess_batch(frames, (640, 640), "bgr")
    gpu, _ = preprocess_batch(frames, (640, 640), "bgr", device=device)
    report = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "preprocess_gpu_vs_cpu_max_error": float((gpu.cpu() - cpu).abs().max()),
    }
    print(report)
    square = [rng.integers(0, 255, (640, 640, 3), dtype=np.uint8) for _ in range(16)]
    rows = []
    for conf in () if args.trained_only else (0.3, 0.95):
        detector = create_detector(
            None, allow_untrained=True, device=device, precision=precision, input_size=(640, 640),
            conf_threshold=conf, nms_threshold=0.45, max_batch_size=16,
        )  # fmt: skip
        for batch in (1, 16):
            row = {
                "conf": conf,
                **profile_stages(detector, square[:batch], args.iterations, device),
            }
            rows.append(row)
            print(json.dumps(row))
        detector.close()
    if args.weights and args.source:
        largest = max(args.batches)
        frames = calibration_frames(args.source, largest)
        if args.frame_size:
            import cv2

            frames = [cv2.resize(frame, tuple(args.frame_size)) for frame in frames]
        video_frames = [frames[index % len(frames)] for index in range(largest)]
        started = time.perf_counter()
        # With --compile this is the product's path (TorchDetector compile_mode): it compiles
        # batch 1 while it is built; other batch sizes compile on their first (warm-up) call.
        detector = create_detector(
            args.weights, device=device, precision=precision, input_size=tuple(args.input_size),
            conf_threshold=args.conf, nms_threshold=0.45, max_batch_size=largest,
            compile_mode=args.compile,
        )  # fmt: skip
        compile_seconds = time.perf_counter() - started if args.compile else None
        eager_model = detector.model  # BatchNorm folded, never compiled
        # The upload alone (the fourth session's batch-16 upload + letterbox took 2.67 ms,
        # the twelfth's 5.5 ms): is it the host's copy speed?
        for batch in args.batches:
            report[f"upload_batch_{batch}"] = upload_times(
                video_frames[:batch], args.iterations, device
            )
            print({f"upload_batch_{batch}": report[f"upload_batch_{batch}"]})
        trained_row = {
            "weights": args.weights,
            "frames": args.source,
            "frame_size": list(frames[0].shape[1::-1]),
            "input_size": args.input_size,
            "compile": args.compile,
            "first_compile_s": compile_seconds,
            "conf": args.conf,
            "device_nms": detector._pipeline.device_nms,
            "fuse_modules": True,
            "grouped_sampling": device.startswith("cuda"),
        }
        # Restoration off, then on: the fourth session's H100 run took 5.94 ms at batch 1 with
        # it, the twelfth's 7.7-8.7 ms; the stage split says where the difference lies.
        for restore in (False, True):
            for batch in args.batches:
                row = profile_stages(
                    detector, video_frames[:batch], args.iterations, device, restore=restore
                )
                rows.append({**row, **trained_row})
                print(json.dumps(rows[-1]))
        if not args.compile:  # against compiled rows the A/B would mix in a second change
            for row in host_nms_rows(args, video_frames, device, precision, trained_row):
                rows.append(row)
                print(json.dumps(row))
        if not args.compile:
            # A/B of the fused module forms (model_fusion.py), batch 1.
            for row in module_form_rows(args, frames[:1], device, precision):
                rows.append(row)
                print(json.dumps(row))
        # Where batch-1 host time goes, operator by operator.
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.startswith("cuda"):
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profiler:
            for _ in range(10 if device.startswith("cuda") else 1):
                detector.detect(video_frames[:1])
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
        args.out.with_suffix(".ops.txt").write_text(table + "\n")
        print(table)
        kernels = kernel_table(eager_model, tuple(args.input_size), device)
        args.out.with_suffix(".kernels.txt").write_text(kernels + "\n")
        print(kernels)
        detector.close()
    report["rows"] = rows
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
