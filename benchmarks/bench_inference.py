"""Inference benchmark for issue 3 (CPU): backends vs baseline vs compute floor, plus the
pre/post-processing micro-benchmarks.

    .venv/bin/python benchmarks/bench_inference.py --json benchmarks/results/inference.json

Measures in one run:
  * letterbox of a 1920x1080 frame into 640x640 (target <= 5 ms), alone and with normalisation;
  * decode + score threshold + NMS of the 8400 anchors of a 640x640 input (target <= 2 ms) at the
    predict.py settings (conf 0.5, NMS 0.3) with ~200 candidate anchors around 10 objects, and at
    the get_map.py settings (conf 0.001, NMS 0.65: all 8400 anchors go through NMS);
  * `togethernet bench` for torch and onnxruntime at 640x640 and 384x640, batch 1 and 4, with
    and without restoration, against the naive baseline and the fp32 matmul floor, plus the
    peak RSS of a fresh process at 640x640 batch 1.
Weights are untrained (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from togethernet_ros.inference.benchmark import (
    BenchmarkPlan,
    format_table,
    run_benchmark,
    write_json,
)
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.letterbox import LetterboxInfo, letterbox
from togethernet_ros.vision.postprocess import postprocess
from togethernet_ros.vision.preprocess import preprocess_batch


def _median_ms(function, repeats: int) -> dict[str, float]:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1e3)
    return {"median_ms": float(np.median(times)), "min_ms": float(np.min(times))}


def _planted_maps(objects: int = 10, seed: int = 0) -> list[torch.Tensor]:
    """640x640 head maps: background plus `objects` 5x5 clusters of confident anchors."""
    generator = torch.Generator().manual_seed(seed)
    maps = [torch.randn(1, 10, side, side, generator=generator) * 0.5 for side in (80, 40, 20)]
    for head in maps:
        head[:, 4:] -= 3.0
    for index in range(objects):
        head = maps[index % 3]
        side = head.shape[-1]
        row, col = (int(v) for v in torch.randint(2, side - 3, (2,), generator=generator))
        head[0, 4, row - 2 : row + 3, col - 2 : col + 3] = 3.0
        head[0, 5 + index % 5, row - 2 : row + 3, col - 2 : col + 3] = 3.0
        head[0, 2:4, row - 2 : row + 3, col - 2 : col + 3] = 1.5
    return maps


def micro_benchmarks(repeats: int) -> dict[str, object]:
    """Letterbox and decode+NMS timings."""
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    results: dict[str, object] = {
        "letterbox_1080p_to_640": _median_ms(lambda: letterbox(frame, (640, 640)), repeats),
        "letterbox_and_normalise_1080p_to_640": _median_ms(
            lambda: preprocess_batch([frame], (640, 640)), repeats
        ),
    }
    info = [LetterboxInfo.compute((1080, 1920), (640, 640))]
    maps = _planted_maps()
    decoded = decode_outputs(maps, (8, 16, 32), (640, 640))
    scores = decoded[0, :, 4] * decoded[0, :, 5:].max(dim=-1).values
    results["decode_nms_8400_predict_settings"] = {
        **_median_ms(
            lambda: postprocess(decode_outputs(maps, (8, 16, 32), (640, 640)), info, 0.5, 0.3),
            repeats,
        ),
        "candidates": int((scores >= 0.5).sum()),
        "kept": len(postprocess(decoded, info, 0.5, 0.3)[0]),
    }
    results["decode_nms_8400_get_map_settings"] = _median_ms(
        lambda: postprocess(decode_outputs(maps, (8, 16, 32), (640, 640)), info, 0.001, 0.65),
        max(3, repeats // 10),
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--input-sizes", default="640x640,384x640")
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    micro = micro_benchmarks(repeats=50)
    for name, value in micro.items():
        print(f"{name}: {value}")
    report: dict[str, object] = {"micro": micro}
    if not args.micro_only:
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.input_sizes.split(",")]
        plan = BenchmarkPlan(
            backends=("torch", "onnxruntime"),
            input_sizes=sizes,
            batch_sizes=[int(v) for v in args.batch_sizes.split(",")],
            restore_modes=(True, False),
            allow_untrained=True,
            rounds=args.rounds,
            iterations=args.iterations,
            threads=args.threads,
            cache_dir=args.cache_dir,
            extra={"micro": micro},
        )
        report = run_benchmark(plan)
        print(format_table(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
