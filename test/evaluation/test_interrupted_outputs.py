"""Result files stopped mid-write (a full disk) keep the previous file, never a torn one.

The disk fills for real: the writing process runs with a file-size limit (RLIMIT_FSIZE), so its
write fails part-way with EFBIG as it would with ENOSPC.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.full_disk import write_on_a_full_disk

from togethernet_ros.evaluation.detection_files import load_detections, save_detections
from togethernet_ros.evaluation.records import ImageDetections

CLASSES = ["person", "car"]


def _detections(images: int) -> dict[str, ImageDetections]:
    found = ImageDetections([[1.0, 2.0, 30.0, 40.0]] * 20, [0.9] * 20, [1] * 20)
    return {f"frame_{index:05d}": found for index in range(images)}


def test_saved_detections_are_never_torn_by_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "detections.json"
    save_detections(path, _detections(3), CLASSES)  # an earlier run's complete file
    before = path.read_bytes()
    limit = 64 * 1024  # the next run's file is ~1 MB: the disk "fills" after 64 KiB
    write_on_a_full_disk(
        """
        from evaluation.test_interrupted_outputs import CLASSES, _detections
        from togethernet_ros.evaluation.detection_files import save_detections
        """,
        f"save_detections({str(path)!r}, _detections(1000), CLASSES)",
        limit,
    )
    # Was: detections.json cut at 64 KiB: the earlier run's file lost, and this one unreadable.
    assert path.read_bytes() == before
    detections, names, _left_out = load_detections(path)
    assert len(detections) == 3 and names == tuple(CLASSES)
    assert [p.name for p in tmp_path.iterdir()] == ["detections.json"]  # no temporary left
    assert json.loads(before)["format"].startswith("togethernet_ros.detections")


def _curves(ap: float) -> dict:
    import numpy as np

    from togethernet_ros.evaluation.voc_map import ClassCurve

    recall = np.linspace(0.0, 1.0, 50)
    return {"car": ClassCurve(recall, 1.0 - 0.5 * recall, recall[::-1], 7, ap)}


def test_pr_plots_are_never_torn_by_a_full_disk(tmp_path: Path) -> None:
    from togethernet_ros.evaluation.pr_curves import plot_pr_curves

    (plot,) = plot_pr_curves(_curves(0.75), tmp_path)  # an earlier run's complete plot
    before = plot.read_bytes()
    limit = 4 * 1024
    assert len(before) > limit
    write_on_a_full_disk(
        """
        from evaluation.test_interrupted_outputs import _curves
        from togethernet_ros.evaluation.pr_curves import plot_pr_curves
        """,
        f"plot_pr_curves(_curves(0.5), {str(tmp_path)!r})",
        limit,
    )
    # Was: pr_car.png cut at 4 KiB, an unreadable image where the last run's was.
    assert plot.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [plot.name]
