"""`togethernet bench` says how many calls its latency percentiles come from, and flags a tail
from too few.

Its defaults (3 rounds x 3 iterations) time 9 calls per configuration: the "p99" of 9 is 0.92
of the way from the second slowest call to the slowest, the "p95" 0.6 of it; both were printed
and written as if measured. Now `latency_ms` states count, percentile_method and
p95_reliable/p99_reliable, and the table marks flagged values with * and explains them.
"""

from __future__ import annotations

import json

import numpy as np

from togethernet_ros.cli import main
from togethernet_ros.inference.benchmark import format_table

# Real measuring, kept short: one small torch configuration, no baseline or RSS probes.
QUICK = [
    *("--input-sizes", "128", "--backends", "torch", "--restore", "off", "--no-baseline"),
    *("--warmup", "0", "--matmul-size", "64", "--no-rss"),
]


def _run_bench(tmp_path, capsys, checkpoint_path, rounds: int, iterations: int):
    report_path = tmp_path / "bench.json"
    arguments = ["bench", "--weights", str(checkpoint_path), *QUICK, "--json", str(report_path)]
    assert main([*arguments, "--rounds", str(rounds), "--iterations", str(iterations)]) == 0
    return json.loads(report_path.read_text()), capsys.readouterr().out


def _table_row(printed: str) -> list[str]:
    return next(line for line in printed.splitlines() if line.startswith("torch")).split()


def test_the_default_nine_calls_flag_p95_and_p99_in_the_json_and_the_table(
    tmp_path, capsys, checkpoint_path
):
    report, printed = _run_bench(tmp_path, capsys, checkpoint_path, rounds=3, iterations=3)
    (row,) = report["results"]
    latency = row["latency_ms"]
    assert latency["count"] == 9 == row["iterations"]
    assert latency["percentile_method"] == "linear"
    assert latency["p95_reliable"] is False and latency["p99_reliable"] is False
    # The values are kept (numbers, as before), only flagged.
    assert latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"]
    cells = _table_row(printed)
    # config size batch restore img/s p50 p95 p99 ...
    assert not cells[5].endswith("*")
    assert cells[6] == f"{latency['p95']:.1f}*" and cells[7] == f"{latency['p99']:.1f}*"
    footnote = next(line for line in printed.splitlines() if line.startswith("* "))
    assert "from 9 timed calls" in footnote
    assert "p95 needs 20 and p99 100" in footnote
    assert "default 3 x 3 = 9 flags both" in footnote


def test_twenty_calls_make_p95_reliable_but_not_p99(tmp_path, capsys, checkpoint_path):
    report, printed = _run_bench(tmp_path, capsys, checkpoint_path, rounds=2, iterations=10)
    latency = report["results"][0]["latency_ms"]
    assert latency["count"] == 20
    assert latency["p95_reliable"] is True and latency["p99_reliable"] is False
    cells = _table_row(printed)
    assert cells[6] == f"{latency['p95']:.1f}" and cells[7] == f"{latency['p99']:.1f}*"
    assert "from 20 timed calls" in printed


def _report(latency_ms: dict) -> dict:
    row = {
        "label": "torch",
        "backend": "torch cpu",
        "input_size": [640, 640],
        "batch_size": 1,
        "restore": True,
        "throughput_ips": 5.0,
        "per_image_ms": 200.0,
        "floor_ms": 50.0,
        "floor_ratio": 4.0,
        "floor_ratio_best": 3.9,
        "latency_ms": latency_ms,
    }
    return {
        "machine": {"cpu": "test cpu", "cores": 2, "torch_threads": 2},
        "matmul_gflops": {"max": 100.0, "median": 90.0},
        "results": [row],
        "targets": {"restoration_off_saving": {}},
        "flops": {},
    }


def test_a_hundred_calls_mark_nothing_and_old_reports_still_print():
    values = np.linspace(100.0, 199.0, 100)
    p50, p95, p99 = (float(np.percentile(values, q)) for q in (50, 95, 99))
    reliable = {
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "min": 100.0,
        "count": 100,
        "percentile_method": "linear",
        "p95_reliable": True,
        "p99_reliable": True,
    }
    table = format_table(_report(reliable))
    assert "*" not in table
    # A --json written before the flags existed has none: printed as it was, unmarked.
    old = format_table(_report({"p50": p50, "p95": p95, "p99": p99, "min": 100.0}))
    assert "*" not in old
    assert f"{p99:.1f}" in old
