"""Peak resident memory of a fresh process that builds a detector and runs it.

Run as `python -m togethernet_ros.inference.peak_rss --backend torch --input-size 640 ...`; it
prints one JSON line. `measure_peak_rss` starts that process, so the number is not inflated by
whatever the calling process (e.g. the benchmark) already holds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np


def measure_peak_rss(
    backend: str,
    input_size: tuple[int, int],
    batch_size: int = 1,
    restore: bool = True,
    weights: str | None = None,
    onnx_path: str | None = None,
    threads: int | None = None,
    timeout_s: float = 600,
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> float:
    """Peak RSS in MB of a child process that builds a detector and runs 3 detections.

    ``device``, ``precision`` and ``cache_dir`` are the detector's (as `create_detector`):
    the probe measures the configuration it is told, nothing else.
    """
    command = [
        sys.executable,
        "-m",
        "togethernet_ros.inference.peak_rss",
        "--backend",
        backend,
        "--input-size",
        f"{input_size[0]}x{input_size[1]}",
        "--batch-size",
        str(batch_size),
        "--device",
        device,
        "--precision",
        precision,
    ]
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    if restore:
        command.append("--restore")
    if weights:
        command += ["--weights", weights]
    if onnx_path:
        command += ["--onnx", onnx_path]
    if threads:
        command += ["--threads", str(threads)]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"peak RSS probe failed: {finished.stderr.strip()[-2000:]}")
    return float(json.loads(finished.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _peak_rss_mb() -> float:
    """High-water RSS of this process image.

    VmHWM restarts at exec; getrusage's ru_maxrss does not (a child started from a big parent
    would report the parent's peak), so it is only the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Probe entry point (child process)."""
    import logging

    from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap

    # Measure the memory of what ships: `predict`, `bench` and the node pin these thresholds.
    keep_frames_on_the_heap()
    logging.disable(logging.WARNING)  # the untrained-weights warning is expected here
    try:
        return _measure(argv)
    finally:
        # Process-wide: where the probe runs inside another program, that program's logs stay.
        logging.disable(logging.NOTSET)


def _measure(argv: list[str] | None) -> int:
    import torch

    from togethernet_ros.inference.factory import create_detector

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--input-size", default="640x640")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--restore", action="store_true")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--onnx", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.input_size.split("x"))
    detector = create_detector(
        args.weights,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        input_size=(height, width),
        allow_untrained=True,
        onnx_path=args.onnx,
        cache_dir=args.cache_dir,
        num_threads=args.threads,
    )
    frames = [
        np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
        for index in range(args.batch_size)
    ]
    for _ in range(3):
        detector.detect(frames, restore=args.restore)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "backend": detector.backend}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
