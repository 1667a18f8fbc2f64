"""pipeline/latency_report.py: how every benchmark script and `bench` report a percentile.

Values are numpy's linear percentiles; each p95/p99 carries the sample count and the shared
rule's flag (p95 from 20 samples, p99 from 100), and tables mark a flagged value with ``*``.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from togethernet_ros.pipeline import LatencyWindow


@pytest.fixture
def report():
    return importlib.import_module("togethernet_ros.pipeline.latency_report")


def test_values_are_numpy_linear_percentiles_with_count_and_flags(report):
    samples = np.arange(1.0, 41.0)  # 40 samples: enough for a p95, not for a p99
    stats = report.percentile_stats(samples)
    assert stats["count"] == 40 and stats["percentile_method"] == "linear"
    assert stats["p50"] == pytest.approx(20.5)
    assert stats["p95"] == pytest.approx(38.05) and stats["p95_reliable"] is True
    assert stats["p99"] == pytest.approx(39.61) and stats["p99_reliable"] is False
    assert stats["max"] == 40.0
    assert "p50_reliable" not in stats  # a median needs no tail count


@pytest.mark.parametrize(
    ("count", "p95_ok", "p99_ok"),
    [(19, False, False), (20, True, False), (99, True, False), (100, True, True)],
)
def test_flags_switch_at_the_shared_thresholds(report, count, p95_ok, p99_ok):
    stats = report.percentile_stats(np.linspace(1.0, 2.0, count))
    assert (stats["p95_reliable"], stats["p99_reliable"]) == (p95_ok, p99_ok)


def test_no_samples_reads_none_and_unreliable(report):
    stats = report.percentile_stats([])
    assert stats["count"] == 0
    assert stats["p50"] is stats["p95"] is stats["p99"] is stats["max"] is None
    assert stats["p95_reliable"] is False and stats["p99_reliable"] is False


def test_rounding_and_chosen_percentiles(report):
    stats = report.percentile_stats([1.0, 2.0, 4.0], (50, 90), include_max=False, digits=1)
    assert stats == {
        "count": 3,
        "percentile_method": "linear",
        "p50": 2.0,
        "p90": 3.6,
        "p90_reliable": False,  # 90th needs 10
    }


def test_non_finite_samples_are_refused_with_their_number(report):
    with pytest.raises(ValueError, match="1 of 3 latency samples are NaN or infinite"):
        report.percentile_stats([1.0, float("nan"), 2.0])


def test_a_window_summary_reports_the_same_way(report):
    window = LatencyWindow(50)
    for value in range(10):
        window.record(value)
    stats = report.summary_stats(window.summary())
    assert stats == report.percentile_stats(np.arange(10.0))
    empty = report.summary_stats(LatencyWindow(3).summary(), (50, 99), include_max=False)
    assert empty == {
        "count": 0,
        "percentile_method": "linear",
        "p50": None,
        "p99": None,
        "p99_reliable": False,
    }
    with pytest.raises(ValueError, match="has no p90"):
        report.summary_stats(window.summary(), (90,))


def test_table_cells_mark_a_flagged_value(report):
    stats = report.percentile_stats(np.arange(1.0, 41.0))
    assert report.cell(stats, 99) == "   39.6*"
    assert report.cell(stats, 95) == "   38.0 "
    assert report.cell(stats, 50, width=6, precision=2) == "20.50 "
    assert report.cell(report.percentile_stats([]), 99) == "    n/a*"
    # A report written before the flags existed is not marked.
    assert report.cell({"p99": 12.0}, 99) == "   12.0 "


def test_describe_and_footnote_give_the_counts(report):
    forty = report.percentile_stats(np.arange(1.0, 41.0))
    assert report.describe(forty) == "p50 20.5  p95 38.0  p99 39.6*  max 40.0 ms (n=40)"
    nine = report.percentile_stats(np.ones(9))
    note = report.footnote([forty, nine, report.percentile_stats(np.ones(500))], "frames")
    assert note.startswith("* from too few frames")
    assert note.endswith("p95 needs 20 (here from 9), p99 needs 100 (here from 9, 40)")
    assert report.footnote([report.percentile_stats(np.ones(100))]) == ""
    assert report.sample_needs() == "p95 needs 20 samples, p99 100"
    assert report.sample_needs((95,)) == "p95 needs 20 samples"
