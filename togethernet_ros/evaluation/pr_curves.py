"""Precision-recall curve plots (PNG), one per class."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from togethernet_ros.evaluation.voc_map import ClassCurve


def plot_pr_curves(curves: Mapping[str, ClassCurve], out_dir: str | Path) -> list[Path]:
    """Write ``pr_<class>.png`` for every class with ground truth; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, curve in curves.items():
        if curve.num_gt == 0:
            continue
        figure, axes = plt.subplots(figsize=(5, 4), dpi=100)
        axes.plot(curve.recall, curve.precision, color="tab:blue")
        axes.fill_between(curve.recall, curve.precision, alpha=0.2, color="tab:blue")
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        axes.set_title(f"{name}: AP@0.5 = {curve.ap:.4f} ({curve.num_gt} objects)")
        axes.grid(alpha=0.3)
        path = out_dir / f"pr_{name}.png"
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
