"""Held-out evaluation of a distilled TogetherNet at several fog densities.

Ground truth = the teacher's pseudo-labels on the clear held-out frames. Per density β the
report gives TogetherNet's VOC mAP@0.5 on the fogged frames next to the teacher run directly on
the same fogged frames (the baseline the student must beat), and the restoration quality
(PSNR/SSIM of the dehazed output, and of the untreated foggy frame, against the clear frame).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from togethernet_ros.distill.coco_classes import CocoClassMapping
from togethernet_ros.distill.image_quality import psnr, ssim
from togethernet_ros.distill.pseudo_labels import PseudoLabelSet, TeacherDetector
from togethernet_ros.evaluation.atomic_write import write_atomically, write_text_atomically
from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.dehazed import dehazed_to_images
from togethernet_ros.vision.fog import add_fog, depth_proxy
from togethernet_ros.vision.postprocess import postprocess
from togethernet_ros.vision.preprocess import preprocess_batch

EVAL_AIRLIGHT = 0.5
# The node's default conf_threshold: where a deployed detector actually cuts its output.
OPERATING_SCORE = 0.3


def _finite(value: float | None) -> float | None:
    """JSON has no inf/NaN: report them as null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 5)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def precision_recall_at_score(metrics: dict, score: float) -> dict:
    """Precision and recall over all classes of the detections scoring ≥ ``score``.

    ``metrics`` is :func:`evaluate_voc`'s result with ``return_curves=True``. mAP ranks boxes
    and ignores where their scores lie; this is what a fixed threshold actually delivers.
    """
    true_positives = detected = num_gt = 0
    for curve in metrics["curves"].values():
        kept = int((curve.scores >= score).sum())
        detected += kept
        num_gt += curve.num_gt
        if kept:
            # recall = cumulative TP / max(num_gt, 1), so this recovers the TP count exactly.
            true_positives += round(float(curve.recall[kept - 1]) * max(curve.num_gt, 1))
    return {
        "score": score,
        "precision": _finite(true_positives / detected) if detected else None,
        "recall": _finite(true_positives / num_gt) if num_gt else None,
        "detections": detected,
    }


@torch.no_grad()
def evaluate_heldout(
    model: torch.nn.Module,
    label_set: PseudoLabelSet,
    betas: Sequence[float],
    input_size: tuple[int, int],
    teacher: TeacherDetector | None = None,
    mapping: CocoClassMapping | None = None,
    device: str | torch.device = "cpu",
    conf_threshold: float = 0.01,
    nms_threshold: float = 0.65,
    batch_size: int = 4,
    max_frames: int | None = None,
    operating_score: float = OPERATING_SCORE,
) -> dict:
    """The report dict (see module docstring); ``teacher`` None skips the baseline.

    Each row also gives precision/recall at ``operating_score`` for the student and teacher.
    """
    frames = label_set.split(heldout=True)
    if max_frames:
        frames = frames[:: max(1, math.ceil(len(frames) / max_frames))]
    if not frames:
        raise ValueError(f"{label_set.root}: no held-out frames to evaluate on")
    names = label_set.class_names
    model = model.to(device).eval()
    truth = {frame.image: ImageGroundTruth(frame.boxes, frame.labels) for frame in frames}
    rows = []
    for beta in betas:
        student, baseline, quality = {}, {}, {"dehazed": [], "hazy": []}
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            clear = [label_set.read_clear_bgr(frame) for frame in chunk]
            hazy = [
                add_fog(image, beta, EVAL_AIRLIGHT, depth_proxy(*image.shape[:2]))
                for image in clear
            ]
            batch, infos = preprocess_batch(hazy, input_size, color_order="bgr", device=device)
            output = model(batch, restore=True)
            decoded = decode_outputs(output.maps, model.strides, input_size)
            found = postprocess(decoded, infos, conf_threshold, nms_threshold)
            dehazed = dehazed_to_images(output.dehazed, infos, color_order="bgr")
            teacher_found = teacher.detect(hazy) if teacher is not None else [None] * len(chunk)
            for frame, image, fogged, result, restored, taught in zip(
                chunk, clear, hazy, found, dehazed, teacher_found, strict=True
            ):
                student[frame.image] = result
                if taught is not None:
                    baseline[frame.image] = mapping.apply(taught)
                quality["dehazed"].append((psnr(restored, image), ssim(restored, image)))
                quality["hazy"].append((psnr(fogged, image), ssim(fogged, image)))
        student_metrics = evaluate_voc(student, truth, names, return_curves=True)
        row = {
            "beta": float(beta),
            "frames": len(frames),
            "student_map": _finite(student_metrics["mAP"]),
            "student_ap": {k: _finite(v) for k, v in student_metrics["ap"].items()},
            "student_at_score": precision_recall_at_score(student_metrics, operating_score),
            "teacher_map": None,
            "teacher_ap": None,
            "teacher_at_score": None,
        }
        if teacher is not None:
            teacher_metrics = evaluate_voc(baseline, truth, names, return_curves=True)
            row["teacher_map"] = _finite(teacher_metrics["mAP"])
            row["teacher_ap"] = {k: _finite(v) for k, v in teacher_metrics["ap"].items()}
            row["teacher_at_score"] = precision_recall_at_score(teacher_metrics, operating_score)
        for kind, pairs in quality.items():
            row[f"{kind}_psnr"] = _finite(_mean([p for p, _ in pairs]))
            row[f"{kind}_ssim"] = _finite(_mean([s for _, s in pairs]))
        rows.append(row)
    num_gt = evaluate_voc({}, truth, names)["num_gt"]
    return {
        "heldout_frames": len(frames),
        "num_gt": num_gt,
        "input_size": list(input_size),
        "conf_threshold": conf_threshold,
        "nms_threshold": nms_threshold,
        "airlight": EVAL_AIRLIGHT,
        "teacher_conf_threshold": getattr(teacher, "conf_threshold", None),
        "operating_score": operating_score,
        "rows": rows,
    }


def write_report(report: dict, directory: str | Path) -> tuple[Path, Path]:
    """Write ``heldout_report.json`` and ``heldout_report.png`` (mAP and PSNR against β)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "heldout_report.json"
    write_text_atomically(json_path, json.dumps(report, indent=1))
    rows = report["rows"]
    betas = [row["beta"] for row in rows]

    def series(key: str) -> list[float]:
        return [np.nan if row[key] is None else row[key] for row in rows]

    figure, (detect_axis, restore_axis) = plt.subplots(1, 2, figsize=(10, 4))
    detect_axis.plot(betas, series("student_map"), "o-", label="TogetherNet (student)")
    if any(row["teacher_map"] is not None for row in rows):
        detect_axis.plot(betas, series("teacher_map"), "s--", label="teacher on foggy frames")
    detect_axis.set(xlabel="fog density β", ylabel="mAP@0.5 vs clear-frame teacher boxes")
    detect_axis.set_ylim(0, 1)
    detect_axis.grid(alpha=0.3)
    detect_axis.legend()
    restore_axis.plot(betas, series("dehazed_psnr"), "o-", label="dehazed output")
    restore_axis.plot(betas, series("hazy_psnr"), "s--", label="foggy input")
    restore_axis.set(xlabel="fog density β", ylabel="PSNR vs clear frame (dB)")
    restore_axis.grid(alpha=0.3)
    restore_axis.legend()
    figure.suptitle(f"held-out frames: {report['heldout_frames']}")
    figure.tight_layout()
    plot_path = directory / "heldout_report.png"
    write_atomically(plot_path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    plt.close(figure)
    return json_path, plot_path


def format_report(report: dict) -> str:
    """A plain-text table of the report rows."""

    def cell(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "  beta  student mAP  teacher mAP  dehazed PSNR/SSIM  foggy PSNR/SSIM",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['beta']:6.3f}  {cell(row['student_map']):>11}  {cell(row['teacher_map']):>11}"
            f"  {cell(row['dehazed_psnr'], 2):>7} / {cell(row['dehazed_ssim'])}"
            f"  {cell(row['hazy_psnr'], 2):>7} / {cell(row['hazy_ssim'])}"
        )
    return "\n".join(lines)
