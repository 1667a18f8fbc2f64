"""CPU speed of an int8 export against its float32 source, end to end through `detect()`.

Both pairs (`NAME.onnx` + `NAME.detect.onnx` and the `NAME.int8.*` copies written by
`togethernet export --int8-calibration`) run in ONNX Runtime's CPU provider on the same real
frame, restoration on and off, in interleaved rounds so that both see the same machine load.

Usage: .venv/bin/python benchmarks/bench_int8.py NAME.onnx IMAGE_OR_VIDEO [--rounds 5]
       [--iterations 5] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from machine import cpu_model_name

from togethernet_ros.inference.int8_quantization import calibration_frames, int8_path
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", help="the float32 NAME.onnx (its int8 copy sits beside it)")
    parser.add_argument("source", help="image, folder or video; its middle frame is used")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    frames = calibration_frames(args.source, 3)
    frame = frames[len(frames) // 2]
    detectors = {
        precision: OnnxRuntimeDetector(
            path, conf_threshold=0.3, nms_threshold=0.45, num_threads=args.threads
        )
        for precision, path in (("fp32", args.onnx), ("int8", int8_path(args.onnx)))
    }
    times: dict[tuple[str, bool], list[float]] = {
        (precision, restore): [] for precision in detectors for restore in (True, False)
    }
    for precision, restore in times:  # warm-up: sessions, arenas
        detectors[precision].detect([frame], restore=restore)
    for _ in range(args.rounds):
        for (precision, restore), samples in times.items():
            for _ in range(args.iterations):
                started = time.perf_counter()
                detectors[precision].detect([frame], restore=restore)
                samples.append(time.perf_counter() - started)
    height, width = detectors["fp32"].input_size
    result = {
        "machine": f"{os.cpu_count()}-core CPU, {cpu_model_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "load_average": os.getloadavg(),
        "input_size": [height, width],
        "frame": list(frame.shape),
        "threads": args.threads,
        "p50_ms": {
            f"{precision} restore {'on' if restore else 'off'}": 1e3 * float(np.median(samples))
            for (precision, restore), samples in times.items()
        },
    }
    for restore in ("on", "off"):
        fp32 = result["p50_ms"][f"fp32 restore {restore}"]
        int8 = result["p50_ms"][f"int8 restore {restore}"]
        result[f"speedup restore {restore}"] = fp32 / int8
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
