"""Side-by-side inference benchmark: backends x input sizes x batch sizes x restoration.

Every configuration and the naive baseline (eager, one image at a time, published network with
its gather-based DCN) are measured in the same process, interleaved in rounds so that load from
other processes hits all of them alike, and the fp32 matmul rate is re-measured in every round
to give the compute floor of the same run. Times are end-to-end `detect()` calls (letterbox,
normalisation, forward, decode, NMS, dehazed image when restoring) on frames of the input size.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from togethernet_ros.inference.compute_floor import (
    count_gflops,
    measure_matmul_gflops,
    published_gflops,
)
from togethernet_ros.pipeline.latency_report import cell, is_flagged
from togethernet_ros.pipeline.latency_stats import (
    PERCENTILE_METHOD,
    min_samples_for_percentile,
    percentile_reliable,
)

LOGGER = logging.getLogger("togethernet_ros")


@dataclass
class BenchmarkPlan:
    """What to measure."""

    backends: Sequence[str] = ("torch", "onnxruntime")
    input_sizes: Sequence[tuple[int, int]] = ((640, 640),)
    batch_sizes: Sequence[int] = (1,)
    restore_modes: Sequence[bool] = (True, False)
    device: str = "cpu"
    precision: str = "fp32"
    weights: str | None = None
    allow_untrained: bool = False
    baseline: bool = True
    rounds: int = 3
    iterations: int = 3  # timed detect() calls per configuration and round
    warmup: int = 2
    threads: int | None = None
    cache_dir: str | None = None
    peak_rss: bool = True
    matmul_size: int = 2048
    extra: dict = field(default_factory=dict)


@dataclass
class _Case:
    label: str
    backend: str
    input_size: tuple[int, int]
    batch_size: int
    restore: bool
    run: object  # callable(frames) -> None
    frames: list[np.ndarray]
    latencies: list[float] = field(default_factory=list)
    backend_name: str = ""


def machine_description() -> dict[str, object]:
    """CPU model, core count and library versions for the report."""
    model_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import onnxruntime

    description = {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name()
    return description


def _frames(input_size: tuple[int, int], count: int) -> list[np.ndarray]:
    height, width = input_size
    return [
        np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
        for index in range(count)
    ]


def _build_cases(plan: BenchmarkPlan) -> tuple[list[_Case], list[object]]:
    from togethernet_ros.inference.factory import create_detector
    from togethernet_ros.inference.torch_detector import TorchDetector
    from togethernet_ros.model import build_model, load_model_weights

    cases, detectors = [], []
    for input_size in plan.input_sizes:
        for backend in plan.backends:
            detector = create_detector(
                plan.weights,
                backend=backend,
                device=plan.device,
                precision=plan.precision,
                input_size=input_size,
                conf_threshold=0.5,
                nms_threshold=0.3,
                allow_untrained=plan.allow_untrained,
                cache_dir=plan.cache_dir,
                max_batch_size=max(plan.batch_sizes),
                num_threads=plan.threads,
            )
            detectors.append(detector)
            for batch_size in plan.batch_sizes:
                for restore in plan.restore_modes:
                    cases.append(
                        _Case(
                            label=backend,
                            backend=backend,
                            input_size=input_size,
                            batch_size=batch_size,
                            restore=restore,
                            run=lambda frames, d=detector, r=restore: d.detect(frames, restore=r),
                            frames=_frames(input_size, batch_size),
                            backend_name=detector.backend,
                        )
                    )
        if plan.baseline:
            loaded = load_model_weights(
                plan.weights, allow_untrained=plan.allow_untrained, num_classes=None
            )
            published = build_model(config=loaded.config, deform_impl="gather")
            published.load_state_dict(loaded.model.state_dict())
            naive = TorchDetector(
                published,
                loaded.class_names,
                device=plan.device,
                input_size=input_size,
                channels_last=False,
                cuda_graphs=False,
                fold_bn=False,
            )
            detectors.append(naive)

            def per_image(frames: list[np.ndarray], d: TorchDetector = naive) -> None:
                for frame in frames:  # the published predict.py handles one image per call
                    d.detect([frame], restore=True)

            cases.append(
                _Case(
                    label="baseline",
                    backend="torch",
                    input_size=input_size,
                    batch_size=1,
                    restore=True,
                    run=per_image,
                    frames=_frames(input_size, 1),
                    backend_name="torch eager, gather DCN, published decoder, per image",
                )
            )
    return cases, detectors


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_benchmark(plan: BenchmarkPlan) -> dict[str, object]:
    """Measure every case of `plan`; returns a JSON-ready report."""
    if plan.threads:
        torch.set_num_threads(plan.threads)
    cases, detectors = _build_cases(plan)
    for case in cases:
        for _ in range(plan.warmup):
            case.run(case.frames)
    _synchronize(plan.device)
    matmul_rates: list[float] = []
    for _ in range(plan.rounds):
        matmul_rates += measure_matmul_gflops(plan.matmul_size)
        for case in cases:
            for _ in range(plan.iterations):
                started = time.perf_counter()
                case.run(case.frames)
                _synchronize(plan.device)
                case.latencies.append(time.perf_counter() - started)
    # The floor is what the machine can do at best, so use its best observed matmul rate.
    matmul_gflops = max(matmul_rates)
    results = [_summarise(case, matmul_gflops) for case in cases]
    onnx_paths = {}
    for detector in detectors:
        files = getattr(detector, "files", None)
        if files:
            onnx_paths[detector.input_size] = str(next(iter(files.values())).path)
        detector.close()
    report = {
        "machine": machine_description(),
        "matmul_gflops": {"max": matmul_gflops, "median": float(np.median(matmul_rates))},
        "flops": _flop_table(plan),
        "results": results,
        "targets": _target_checks(results),
    }
    if plan.peak_rss:
        report["peak_rss_mb"] = _peak_rss(plan, onnx_paths)
    report.update(plan.extra)
    return report


def _summarise(case: _Case, matmul_gflops: float) -> dict[str, object]:
    """One configuration's row; ``latency_ms`` states its sample count and percentile method,
    and flags p95/p99 from fewer timed calls than they need (20 / 100, see
    pipeline/latency_stats.py): the default 3 rounds x 3 iterations give 9, where "p99" is
    0.92 of the way from the second largest call to the largest.
    """
    latencies_ms = np.array(case.latencies) * 1e3
    count = len(latencies_ms)
    # numpy's default estimator: PERCENTILE_METHOD, as the reports state it.
    p50, p95, p99 = (float(np.percentile(latencies_ms, q)) for q in (50, 95, 99))
    per_image_ms = p50 / case.batch_size
    floor_ms = published_gflops(case.input_size, case.restore) / matmul_gflops * 1e3
    return {
        "label": case.label,
        "backend": case.backend_name,
        "input_size": list(case.input_size),
        "batch_size": case.batch_size,
        "restore": case.restore,
        "iterations": count,
        "latency_ms": {
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "min": float(latencies_ms.min()),
            "count": count,
            "percentile_method": PERCENTILE_METHOD,
            "p95_reliable": percentile_reliable(95.0, count),
            "p99_reliable": percentile_reliable(99.0, count),
        },
        "throughput_ips": case.batch_size / (p50 / 1e3),
        "per_image_ms": per_image_ms,
        "floor_ms": floor_ms,
        "floor_ratio": per_image_ms / floor_ms,
        # Fastest call against the best matmul rate: the ratio on a quiet machine.
        "floor_ratio_best": float(latencies_ms.min()) / case.batch_size / floor_ms,
    }


def _flop_table(plan: BenchmarkPlan) -> dict[str, dict[str, float]]:
    from togethernet_ros.model import build_model

    table = {}
    ours = build_model().eval()
    for height, width in plan.input_sizes:
        table[f"{height}x{width}"] = {
            "published_restore": published_gflops((height, width), True),
            "published_detect": published_gflops((height, width), False),
            "ours_restore": count_gflops(ours, (height, width), True),
            "ours_detect": count_gflops(ours, (height, width), False),
        }
    return table


def _target_checks(results: list[dict]) -> dict[str, object]:
    """Restoration-off saving per backend/size/batch (issue target: >= 20 %)."""
    savings = {}
    for row in results:
        if row["label"] == "baseline" or not row["restore"]:
            continue
        for other in results:
            if (
                other["label"] == row["label"]
                and not other["restore"]
                and other["input_size"] == row["input_size"]
                and other["batch_size"] == row["batch_size"]
            ):
                key = f"{row['label']} {row['input_size'][0]}x{row['input_size'][1]} b{row['batch_size']}"
                savings[key] = 1 - other["per_image_ms"] / row["per_image_ms"]
    return {"restoration_off_saving": savings}


def _peak_rss(plan: BenchmarkPlan, onnx_paths: dict) -> dict[str, float]:
    from togethernet_ros.inference.peak_rss import measure_peak_rss

    sizes = [size for size in plan.input_sizes if tuple(size) == (640, 640)] or [
        plan.input_sizes[0]
    ]
    size = tuple(sizes[0])
    peaks = {}
    for backend in plan.backends:
        onnx_path = onnx_paths.get(size) if backend == "onnxruntime" else None
        if backend == "onnxruntime" and onnx_path is None:
            continue
        try:
            peaks[f"{backend} {size[0]}x{size[1]} b1 restore"] = measure_peak_rss(
                backend,
                size,
                weights=plan.weights,
                onnx_path=onnx_path,
                threads=plan.threads,
                device=plan.device,
                precision=plan.precision,
                cache_dir=plan.cache_dir,
            )
        except (RuntimeError, OSError) as error:
            LOGGER.warning("peak RSS of %s not measured: %s", backend, error)
    return peaks


def format_table(report: dict[str, object]) -> str:
    """Human-readable table of a `run_benchmark` report."""
    lines = [
        f"machine: {report['machine']['cpu']} ({report['machine']['cores']} cores), "
        f"torch threads {report['machine']['torch_threads']}",
        f"fp32 matmul: {report['matmul_gflops']['max']:.1f} GFLOP/s (max), "
        f"{report['matmul_gflops']['median']:.1f} (median)",
        "",
        f"{'config':<12}{'size':>9}{'batch':>6}{'restore':>8}{'img/s':>8}{'p50 ms':>9}"
        f"{'p95 ms':>8} {'p99 ms':>8} {'ms/img':>9}{'floor':>8}{'x floor':>8}{'best':>6}  backend",
    ]
    for row in report["results"]:
        height, width = row["input_size"]
        latency = row["latency_ms"]
        lines.append(
            f"{row['label']:<12}{f'{height}x{width}':>9}{row['batch_size']:>6}"
            f"{'on' if row['restore'] else 'off':>8}{row['throughput_ips']:>8.2f}"
            f"{latency['p50']:>9.1f}{cell(latency, 95, width=9)}{cell(latency, 99, width=9)}"
            f"{row['per_image_ms']:>9.1f}{row['floor_ms']:>8.1f}{row['floor_ratio']:>8.2f}"
            f"{row['floor_ratio_best']:>6.2f}"
            f"  {row['backend']}"
        )
    footnote = _unreliable_tail_footnote(report["results"])
    if footnote:
        lines.append(footnote)
    savings = report["targets"]["restoration_off_saving"]
    if savings:
        lines.append("")
        lines += [f"restoration off saves {value:.0%}: {key}" for key, value in savings.items()]
    for key, value in report.get("peak_rss_mb", {}).items():
        lines.append(f"peak RSS {key}: {value:.0f} MB")
    for size, counts in report["flops"].items():
        lines.append(
            f"GFLOP/img {size}: published {counts['published_restore']:.2f} "
            f"(detect only {counts['published_detect']:.2f}), "
            f"ours {counts['ours_restore']:.2f} ({counts['ours_detect']:.2f})"
        )
    return "\n".join(lines)


def _unreliable_tail_footnote(results: list[dict]) -> str:
    """What ``*`` means, with the sample counts of the marked rows (empty when none is)."""
    counts = sorted(
        {
            row["latency_ms"]["count"]
            for row in results
            if is_flagged(row["latency_ms"], 95) or is_flagged(row["latency_ms"], 99)
        }
    )
    if not counts:
        return ""
    p95_needs, p99_needs = min_samples_for_percentile(95.0), min_samples_for_percentile(99.0)
    return (
        f"* from {', '.join(map(str, counts))} timed calls (--rounds x --iterations): p95 needs "
        f"{p95_needs} and p99 {p99_needs} to be more than an interpolation between the slowest "
        f"calls; the default 3 x 3 = 9 flags both (e.g. --rounds 4 --iterations 25 for p99)"
    )


def write_json(report: dict[str, object], path: str | Path) -> None:
    """Write the report as indented JSON."""
    import json

    from togethernet_ros.evaluation.atomic_write import write_text_atomically

    write_text_atomically(path, json.dumps(report, indent=1))
