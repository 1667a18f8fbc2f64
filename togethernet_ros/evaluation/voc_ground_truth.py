"""Ground truth for `togethernet eval` read from VOC XML as the published get_map.py reads it.

get_map.py copies each object's ``<bndbox>`` text into its ground-truth file and scores
``float()`` of it: boxes are neither clipped to the image nor dropped for having no area. With
the VOC "+1 pixel" convention the scorer uses, ``xmin == xmax`` is a one-pixel-wide object
that a detection can hit, and a box reaching past the image is matched as drawn. An inverted
box (``xmax < xmin``) still counts as an object there, one that almost no detection can match.
Training's reader (`checked_box`) clips and drops such boxes, as upstream's data loader does
for training, so eval reads the boxes again here instead of taking the training annotation.
Objects are chosen as the dataset's reader chooses them (known class, readable ``<bndbox>``
and ``<difficult>``); ``<difficult>`` is 1 for a difficult object, as ``int(text) == 1`` there.
Two deliberate differences: a non-finite coordinate drops the object (reported), and class
names are compared with surrounding whitespace stripped, as the dataset's reader does.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.training.annotation import BOX_CLIPPED, BOX_DROPPED
from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.paired_dataset import SampleRecord, VocFogDataset
from togethernet_ros.training.voc_xml import drop_namespaces

_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


class EvalDataIssues(DataIssues):
    """The dataset's issue log for eval: box clipping and dropping are not what eval does.

    The training reader reports (and in strict mode refuses) the boxes it clips or drops;
    eval scores those boxes as written, and :func:`voc_ground_truth` reports them itself.
    Every other problem (a missing image, a corrupt file, an unknown class) is kept.
    """

    def report(self, path: str | Path, problem: str, action: str, line: int | None = None) -> None:
        """Record a problem unless it is the training reader's verdict on a box's geometry."""
        if action in (BOX_CLIPPED, BOX_DROPPED):
            return
        super().report(path, problem, action, line)


def voc_ground_truth(
    dataset: VocFogDataset,
    annotations_dir: Path,
    issues: DataIssues | None = None,
    records: Sequence[SampleRecord] | None = None,
) -> dict[str, ImageGroundTruth]:
    """Ground truth of every record, keyed by its (foggy) image's stem, boxes as get_map.py's.

    ``dataset`` is a VOC dataset read with an :class:`EvalDataIssues`; its records name the
    images, their real sizes and the ids of ``annotations_dir/<id>.xml``. Box problems are
    reported to ``issues`` (default ``dataset.issues``; a :class:`DataError` in strict mode).
    ``records``: only these of the dataset's records (default: all).
    """
    issues = dataset.issues if issues is None else issues
    class_names = dataset.class_names
    by_id: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    truth = {}
    for record in dataset.records if records is None else records:
        annotation = record.annotation
        if record.image_id not in by_id:
            by_id[record.image_id] = read_get_map_boxes(
                annotations_dir / f"{record.image_id}.xml",
                class_names,
                annotation.width,
                annotation.height,
                issues,
            )
        boxes, labels, difficult = by_id[record.image_id]
        truth[record.hazy_path.stem] = ImageGroundTruth(
            boxes, labels, difficult, annotation.width, annotation.height
        )
    return truth


def read_get_map_boxes(
    path: Path, class_names: Sequence[str], width: int, height: int, issues: DataIssues
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy float64 boxes, class ids, difficult flags) of one VOC XML file, as written.

    Boxes reaching outside the ``width`` x ``height`` image and inverted boxes are reported
    and kept; a non-finite one is reported and dropped. A file that no longer parses (the
    dataset read it a moment ago) is a :class:`DataError`.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise DataError(f"{path}: cannot be read again for evaluation ({error})") from error
    drop_namespaces(root)  # as the dataset's reader: <annotation xmlns=...>
    boxes, labels, difficult = [], [], []
    for number, obj in enumerate(root.iter("object"), start=1):
        chosen = _object(obj, class_names)
        if chosen is None:
            continue  # the dataset's reader has reported why
        box, label, is_difficult = chosen
        where = f"{path} object #{number}"
        if not all(math.isfinite(value) for value in box):
            issues.report(where, f"non-finite box {box}", "object dropped")
            continue
        x1, y1, x2, y2 = box
        if x2 < x1 or y2 < y1:
            issues.report(
                where,
                f"inverted box {box} (xmax < xmin or ymax < ymin)",
                "scored as written, as get_map.py does: an object hardly any box can match",
            )
        elif width > 0 and height > 0 and (min(x1, y1) < 0 or x2 > width or y2 > height):
            issues.report(
                where,
                f"box {box} outside the {width}x{height} image",
                "scored as written, as get_map.py does (not clipped)",
            )
        boxes.append(box)
        labels.append(label)
        difficult.append(is_difficult)
    return (
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(difficult, bool),
    )


def _object(obj: ET.Element, class_names: Sequence[str]) -> tuple[list[float], int, bool] | None:
    """(xyxy box, class id, difficult) of an object the dataset's reader keeps, else None."""
    name_element = obj.find("name")
    name = (name_element.text or "").strip() if name_element is not None else ""
    if name not in class_names:
        return None
    bndbox = obj.find("bndbox")
    texts = [None if bndbox is None else bndbox.findtext(tag) for tag in _COORDINATES]
    try:
        box = [float(text) for text in texts if text is not None]
    except ValueError:
        return None
    if len(box) != len(_COORDINATES):
        return None
    flag = obj.find("difficult")
    text = flag.text.strip() if flag is not None and flag.text is not None else ""
    try:
        is_difficult = bool(text) and int(float(text)) == 1
    except (ValueError, OverflowError):  # "yes", "nan"; "inf"
        return None
    return box, list(class_names).index(name), is_difficult
