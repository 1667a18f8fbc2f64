"""`togethernet bench`: throughput and latency per backend / size / batch / restoration."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from togethernet_ros.inference.cli_arguments import (
    add_weights_arguments,
    check_output_file,
    parse_input_size,
    parse_non_negative_int,
    parse_positive_int,
)
from togethernet_ros.inference.command_errors import reports_user_errors

HELP = "benchmark inference backends side by side against a naive baseline and the compute floor"

_T = TypeVar("_T")
BACKENDS = ("torch", "onnxruntime")


def _list_of(parse: Callable[[str], _T]) -> Callable[[str], list[_T]]:
    def parse_list(text: str) -> list[_T]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        values = []
        for item in items:
            try:
                values.append(parse(item))
            except ValueError as error:
                # argparse would otherwise only say "invalid parse_list value".
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not a valid value ({error})"
                ) from None
        return values

    return parse_list


def _backend(text: str) -> str:
    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; use {' and/or '.join(BACKENDS)}"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `togethernet bench`."""
    add_weights_arguments(parser)
    parser.add_argument(
        "--backends",
        type=_list_of(_backend),
        default=list(BACKENDS),
        help=f"comma list (default {','.join(BACKENDS)})",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda[:N] or auto (a GPU when torch sees one; default cpu)",
    )
    parser.add_argument(
        "--precision", choices=("fp32", "fp16"), default="fp32", help="default fp32"
    )
    parser.add_argument(
        "--input-sizes",
        type=_list_of(parse_input_size),
        default=[(640, 640)],
        help="e.g. 640,384x640 (default 640)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_list_of(parse_positive_int),
        default=[1],
        help="e.g. 1,4 (default 1)",
    )
    parser.add_argument(
        "--restore",
        choices=("both", "on", "off"),
        default="both",
        help="restoration branch (default both)",
    )
    parser.add_argument(
        "--rounds",
        type=parse_positive_int,
        default=3,
        help="interleaved measurement rounds (default 3)",
    )
    parser.add_argument(
        "--iterations",
        type=parse_positive_int,
        default=3,
        help="timed calls per round; p95 needs rounds x iterations >= 20 calls and p99 >= 100, "
        "fewer are marked * in the table and p95_reliable/p99_reliable false in --json",
    )
    parser.add_argument(
        "--warmup",
        type=parse_non_negative_int,
        default=2,
        help="untimed calls per row first (default 2)",
    )
    parser.add_argument(
        "--threads", type=parse_positive_int, default=None, help="CPU threads (default: all)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS probes")
    parser.add_argument(
        "--matmul-size",
        type=parse_positive_int,
        default=2048,
        help="side of the square matmuls for the floor (default 2048)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="ONNX exports / TensorRT engines (default $XDG_CACHE_HOME/togethernet_ros, else "
        "~/.cache/togethernet_ros)",
    )
    parser.add_argument("--json", default=None, help="write the full report here")


@reports_user_errors("bench")
def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    import logging

    from togethernet_ros.inference.benchmark import (
        BenchmarkPlan,
        format_table,
        run_benchmark,
        write_json,
    )
    from togethernet_ros.inference.factory import resolve_auto_device

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.json:
        # Checked first: the report is written after minutes of measuring.
        check_output_file(args.json, "--json")
    plan = BenchmarkPlan(
        backends=args.backends,
        input_sizes=args.input_sizes,
        batch_sizes=args.batch_sizes,
        restore_modes={"both": (True, False), "on": (True,), "off": (False,)}[args.restore],
        # Once, here: the baseline, the synchronisation and the memory probes take a device.
        device=resolve_auto_device(args.device),
        precision=args.precision,
        weights=args.weights,
        allow_untrained=args.allow_untrained,
        baseline=not args.no_baseline,
        rounds=args.rounds,
        iterations=args.iterations,
        warmup=args.warmup,
        threads=args.threads,
        cache_dir=args.cache_dir,
        peak_rss=not args.no_rss,
        matmul_size=args.matmul_size,
    )
    report = run_benchmark(plan)
    print(format_table(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0
