"""The ground truth of a file dataset as `togethernet eval` scores it (training validates alike).

Keyed by each record's foggy image file stem. VOC ground truth is read again from the XML as
get_map.py reads it (boxes as written: neither clipped to the image nor dropped, see
voc_ground_truth); YOLO labels are taken as the dataset's reader checked them. Whole-pixel
truncation of the detections (get_map.py's ``int(left)``) is only faithful against VOC's
whole-pixel boxes, hence `truncates_detection_boxes`.
"""

from __future__ import annotations

from collections.abc import Sequence

from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.voc_ground_truth import voc_ground_truth
from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.training.paired_dataset import RecordDataset, SampleRecord, VocFogDataset


def scored_ground_truth(
    dataset: RecordDataset,
    issues: DataIssues | None = None,
    records: Sequence[SampleRecord] | None = None,
) -> dict[str, ImageGroundTruth]:
    """Ground truth of the records of ``dataset`` as eval scores it, by foggy image stem.

    ``issues`` collects what reading VOC boxes as written finds (default: the dataset's log);
    ``records``: only these of its records (default: all).
    """
    if isinstance(dataset, VocFogDataset):
        return voc_ground_truth(dataset, dataset.root / "Annotations", issues, records)
    return record_ground_truth(dataset, records)


def record_ground_truth(
    dataset: RecordDataset, records: Sequence[SampleRecord] | None = None
) -> dict[str, ImageGroundTruth]:
    """Ground truth by foggy image stem as the dataset's reader checked it (clipped, degenerate
    boxes dropped): what eval scores for YOLO labels. ``records``: only these (default: all)."""
    truth = {}
    for record in dataset.records if records is None else records:
        annotation = record.annotation
        truth[record.hazy_path.stem] = ImageGroundTruth(
            annotation.boxes,
            annotation.labels,
            annotation.difficult,
            annotation.width,
            annotation.height,
        )
    return truth


def truncates_detection_boxes(dataset: RecordDataset) -> bool:
    """Whether detections are scored truncated to whole pixels, as get_map.py's files have them.

    Only against VOC XML's whole-pixel boxes: against YOLO labels' sub-pixel boxes it would
    shift every detection up-left by up to a pixel.
    """
    return isinstance(dataset, VocFogDataset)
