"""distill's held-out report files stopped mid-write (a full disk) keep the previous run's whole.

The disk fills for real: the writing process runs with a file-size limit (RLIMIT_FSIZE), so the
write fails part-way with EFBIG as it would with ENOSPC.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.full_disk import write_on_a_full_disk

from togethernet_ros.distill.heldout_report import write_report

from .test_model_card import _report


def test_a_full_disk_leaves_the_previous_report_and_plot_whole(tmp_path: Path) -> None:
    json_path, plot_path = write_report(_report(), tmp_path)  # an earlier run's complete files
    plot_before = plot_path.read_bytes()
    limit = 16 * 1024  # the JSON fits, the ~40 KB plot does not
    assert len(json_path.read_bytes()) < limit < len(plot_before)
    write_on_a_full_disk(
        """
        from distill.test_model_card import _report
        from togethernet_ros.distill.heldout_report import write_report
        report = _report()
        report["heldout_frames"] = 99
        """,
        f"write_report(report, {str(tmp_path)!r})",
        limit,
    )
    # Was: heldout_report.png cut at 16 KiB, an unreadable image where the last one was.
    assert plot_path.read_bytes() == plot_before
    assert json.loads(json_path.read_text())["heldout_frames"] == 99  # written whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [json_path.name, plot_path.name]
