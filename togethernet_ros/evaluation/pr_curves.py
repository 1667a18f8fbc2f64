"""Precision-recall curve plots (PNG), one per class."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from togethernet_ros.evaluation.atomic_write import write_atomically
from togethernet_ros.evaluation.voc_map import ClassCurve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Path separators, characters Windows refuses in names and control characters. Class names are
# the user's own ("car/van", "bus: long"), and one of them used to end `eval` with "No such file
# or directory" after all the inference, before metrics.json was written.
_UNSAFE = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f]')


def curve_file_name(name: str, taken: set[str]) -> str:
    """``pr_<name>.png`` with unsafe characters replaced by ``_``, unique within ``taken``.

    ``taken`` holds the case-folded names already used (a case-insensitive disk would merge
    "Car" and "car") and gets this one added. Spaces and non-ASCII letters are kept; a name
    longer than a file name may be is cut.
    """
    stem = _UNSAFE.sub("_", name).strip()
    # File names are limited to 255 bytes; leave room for the prefix and a number.
    stem = stem.encode()[:200].decode(errors="ignore") or "_"
    if stem in (".", ".."):
        stem = stem.replace(".", "_")
    candidate, number = f"pr_{stem}.png", 2
    while candidate.casefold() in taken:
        candidate, number = f"pr_{stem}_{number}.png", number + 1
    taken.add(candidate.casefold())
    return candidate


def curve_figure(name: str, curve: ClassCurve, iou_threshold: float) -> Figure:
    """The precision-recall plot of one class, titled with the IoU its AP was computed at."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4), dpi=100)
    axes.plot(curve.recall, curve.precision, color="tab:blue")
    axes.fill_between(curve.recall, curve.precision, alpha=0.2, color="tab:blue")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    axes.set_title(f"{name}: AP@{iou_threshold:g} = {curve.ap:.4f} ({curve.num_gt} objects)")
    axes.grid(alpha=0.3)
    return figure


def plot_pr_curves(
    curves: Mapping[str, ClassCurve], out_dir: str | Path, iou_threshold: float = 0.5
) -> list[Path]:
    """Write ``pr_<class>.png`` for every class with ground truth; returns the written paths.

    ``iou_threshold``: the one the curves were matched at (it is in every title).
    """
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    taken: set[str] = set()
    for name, curve in curves.items():
        if curve.num_gt == 0:
            continue
        figure = curve_figure(name, curve, iou_threshold)
        path = out_dir / curve_file_name(name, taken)
        figure.tight_layout()
        try:  # a full disk leaves the previous plot, never a torn one
            write_atomically(
                path, lambda handle, figure=figure: figure.savefig(handle, format="png")
            )
        finally:
            plt.close(figure)
        written.append(path)
    return written
