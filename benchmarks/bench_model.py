"""Eager PyTorch CPU time of TogetherNet per frame: our fast model vs the published evaluation.

Variants (same random weights, batch 1, ``torch.inference_mode``):
* ``fast``: grid_sample DCN + reordered restoration tail (the default ``build_model()``);
* ``fast+channels_last``: the same with NHWC tensors;
* ``published``: gather DCN + literal full-resolution decoder tail (``deform_impl="gather"``),
  i.e. the naive baseline evaluated like the upstream code;
each with restoration on and off. Runs are interleaved (one forward of every variant per round)
so that load from other processes hits all variants alike; medians are reported, in wall time
and in process CPU time. On a shared machine run ``--threads 1`` as well: single-threaded CPU
time is nearly immune to other processes (no barrier spinning, no descheduled wall time).

The compute floor is the published model's 47.1 GFLOP divided by the fp32 matmul rate measured
in the same run (the issue's definition). Writes JSON to --out (default
benchmarks/results/model.json) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
from machine import cpu_model_name

from togethernet_ros.model import build_model, check_input_size

PUBLISHED_GFLOP_640 = 47.1


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> tuple[float, float]:
    """Median fp32 GEMM rate (GFLOP/s) at the benchmark's thread count: (wall, per CPU-second).

    The CPU-time rate divided by ``threads`` is the rate this process would see on idle cores
    (only meaningful with 1 thread, where no time goes to spinning at barriers).
    """
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        wall.append(2 * size**3 / (time.perf_counter() - start_wall) / 1e9)
        cpu.append(2 * size**3 / max(time.process_time() - start_cpu, 1e-9) / 1e9)
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[640], help="H [W], x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model.json"))
    args = parser.parse_args()
    height, width = check_input_size(args.size[0] if len(args.size) == 1 else tuple(args.size))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    fast = build_model().eval()
    published = build_model(deform_impl="gather").eval()
    published.load_state_dict(fast.state_dict())
    fast_nhwc = build_model().eval().to(memory_format=torch.channels_last)
    fast_nhwc.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, height, width)
    x_nhwc = x.contiguous(memory_format=torch.channels_last)
    variants = {}
    for name, model, inp in (
        ("fast", fast, x),
        ("fast+channels_last", fast_nhwc, x_nhwc),
        ("published", published, x),
    ):
        for restore in (True, False):
            variants[f"{name}, restore {'on' if restore else 'off'}"] = (model, inp, restore)

    load_before = os.getloadavg()[0]
    rate_before, cpu_rate_before = matmul_gflops(args.threads)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with torch.inference_mode():
        for model, inp, restore in variants.values():
            model(inp, restore=restore)  # warm-up: allocator, oneDNN primitives
        for _ in range(args.rounds):
            for name, (model, inp, restore) in variants.items():
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                model(inp, restore=restore)
                times[name].append(
                    (time.perf_counter() - start_wall, time.process_time() - start_cpu)
                )
    rate_after, cpu_rate_after = matmul_gflops(args.threads)
    load_after = os.getloadavg()[0]

    gflop = PUBLISHED_GFLOP_640 * (height * width) / (640 * 640)
    rate = max(rate_before, rate_after)  # the less disturbed of the two measurements
    cpu_rate = max(cpu_rate_before, cpu_rate_after)
    floor_ms = gflop / rate * 1000
    cpu_floor_ms = gflop / cpu_rate * 1000
    rows = {}
    for name, samples in times.items():
        median_ms = statistics.median(wall for wall, _ in samples) * 1000
        cpu_ms = statistics.median(cpu for _, cpu in samples) * 1000
        rows[name] = {
            "median_ms": median_ms,
            "min_ms": min(wall for wall, _ in samples) * 1000,
            "floor_ratio": median_ms / floor_ms,
            "cpu_ms": cpu_ms,
            "cpu_floor_ratio": cpu_ms / cpu_floor_ms,
        }
    savings = {
        impl: 1
        - rows[f"{impl}, restore off"]["median_ms"] / rows[f"{impl}, restore on"]["median_ms"]
        for impl in ("fast", "fast+channels_last", "published")
    }
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core CPU, {cpu_model_name()}",
        "torch": torch.__version__,
        "threads": args.threads,
        "input_hw": [height, width],
        "rounds": args.rounds,
        "load_average_before_after": [load_before, load_after],
        "matmul_gflops_before_after": [rate_before, rate_after],
        "matmul_gflops_per_cpu_second_before_after": [cpu_rate_before, cpu_rate_after],
        "floor_ms": floor_ms,
        "cpu_floor_ms": cpu_floor_ms,
        "variants": rows,
        "restore_off_saving": savings,
    }

    print(f"TogetherNet eager CPU, {height}x{width}, batch 1, {args.threads} threads")
    print(
        f"matmul {rate_before:.0f}/{rate_after:.0f} GFLOP/s -> floor {floor_ms:.0f} ms; "
        f"load average {load_before:.1f} -> {load_after:.1f}"
    )
    print(
        f"CPU-time floor {cpu_floor_ms:.0f} ms ({cpu_rate_before:.0f}/{cpu_rate_after:.0f} GFLOP/s)"
    )
    header = ("variant", "median ms", "min ms", "x floor", "CPU ms", "x CPU floor")
    print("{:32s} {:>10s} {:>8s} {:>8s} {:>8s} {:>12s}".format(*header))
    for name, row in rows.items():
        print(
            f"{name:32s} {row['median_ms']:10.0f} {row['min_ms']:8.0f} {row['floor_ratio']:8.2f} "
            f"{row['cpu_ms']:8.0f} {row['cpu_floor_ratio']:12.2f}"
        )
    for impl, saving in savings.items():
        print(f"restoration off saves {saving:.0%} ({impl})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
