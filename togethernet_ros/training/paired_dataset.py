"""Datasets of (hazy, clean, boxes, labels) samples from VOC-FOG or YOLO-labelled folders.

Both readers check every label file up front (bad data reported through :class:`DataIssues`)
and load images lazily in ``__getitem__``. Images are returned as RGB uint8 H×W×3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from torch.utils.data import Dataset

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.training.annotation import ImageAnnotation
from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.image_pairing import (
    clean_id_of,
    foggy_versions,
    index_foggy_images,
    index_images,
)
from togethernet_ros.training.voc_xml import parse_voc_xml, read_image_set
from togethernet_ros.training.yolo_labels import read_yolo_labels
from togethernet_ros.vision.image_file import image_file_size, read_whole_image_file

LOGGER = logging.getLogger("togethernet_ros")


class PairedSample(NamedTuple):
    """One training/evaluation sample; the first four fields are the trainer's contract."""

    hazy: np.ndarray
    clean: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: str


@dataclass(frozen=True)
class SampleRecord:
    """Where one sample lives on disk plus its checked annotation."""

    image_id: str
    hazy_path: Path
    clean_path: Path | None
    annotation: ImageAnnotation


def read_rgb(path: Path) -> np.ndarray | None:
    """Decode an image file as RGB uint8, or None when it cannot be used (see load_rgb)."""
    return load_rgb(path)[0]


def load_rgb(path: Path) -> tuple[np.ndarray | None, str]:
    """(RGB uint8 image, "") or (None, why it cannot be used: unreadable, truncated JPEG...)."""
    image, problem = read_whole_image_file(path)
    if image is None:
        return None, problem
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), ""


class RecordDataset(Dataset):
    """Shared loading logic: records → :class:`PairedSample` with lenient fallback."""

    def __init__(self, records: list[SampleRecord], class_names: Sequence[str], strict: bool):
        self.records = records
        self.class_names = tuple(class_names)
        self.strict = strict

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> PairedSample:
        # An image can turn out unreadable only when decoded; lenient mode then substitutes the
        # next sample (deterministically) and logs it, strict mode raises.
        for attempt in range(len(self.records)):
            sample = self._load(self.records[(index + attempt) % len(self.records)])
            if sample is not None:
                return sample
        raise DataError("no readable image in the whole dataset")

    def _load(self, record: SampleRecord) -> PairedSample | None:
        hazy, hazy_problem = load_rgb(record.hazy_path)
        clean, clean_problem = hazy, hazy_problem
        if record.clean_path is not None:
            clean, clean_problem = load_rgb(record.clean_path)
        for path, image, problem in (
            (record.hazy_path, hazy, hazy_problem),
            (record.clean_path, clean, clean_problem),
        ):
            if image is None:
                if self.strict:
                    raise DataError(f"{path}: {problem} (strict data mode)")
                LOGGER.warning("%s: %s (sample skipped)", path, problem)
                return None
        if hazy.shape != clean.shape:
            message = f"{record.hazy_path}: size {hazy.shape} != clean {clean.shape}"
            if self.strict:
                raise DataError(message + " (strict data mode)")
            LOGGER.warning("%s (clean resized to match)", message)
            clean = cv2.resize(clean, (hazy.shape[1], hazy.shape[0]))
        annotation = record.annotation
        return PairedSample(
            hazy,
            clean,
            annotation.boxes,
            annotation.labels,
            annotation.difficult,
            record.image_id,
        )

    def verify_images(self, issues: DataIssues) -> None:
        """Decode every image once; unreadable samples are reported and removed."""
        kept = []
        for record in self.records:
            paths = [record.hazy_path] + ([record.clean_path] if record.clean_path else [])
            for path in paths:
                problem = load_rgb(path)[1]
                if problem:
                    issues.report(path, problem, "sample skipped")
                    break
            else:
                kept.append(record)
        self.records = kept


def _check_image(
    path: Path | None, what: str, issues: DataIssues, context: str | Path
) -> Path | None:
    if path is None or not path.is_file():
        issues.report(context, f"{what} image missing", "sample skipped")
        return None
    return path


class VocFogDataset(RecordDataset):
    """A VOC-format dataset whose foggy images are paired with clean originals by file name.

    Layout under ``root``: ``Annotations/<id>.xml``, ``ImageSets/Main/<image_set>.txt``,
    ``<clean_dir>/<id>.jpg`` and ``<hazy_dir>/<id>[_<beta>].jpg``. ``hazy_dir=None`` uses the
    clean images as input (plain VOC); ``clean_dir=None`` means no clean originals (e.g. RTTS),
    the hazy image then stands in as its own restoration target.
    """

    def __init__(
        self,
        root: str | Path,
        image_set: str = "train",
        class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
        hazy_dir: str | None = "FOG",
        clean_dir: str | None = "JPEGImages",
        strict: bool = False,
        issues: DataIssues | None = None,
        skip_empty: bool = False,
    ):
        root = Path(root)
        self.root = root
        issues = issues if issues is not None else DataIssues(strict=strict)
        self.issues = issues
        if hazy_dir is None and clean_dir is None:
            raise ValueError("VocFogDataset: need at least one of hazy_dir and clean_dir")
        ids = read_image_set(root / "ImageSets" / "Main" / f"{image_set}.txt")
        wanted = set(ids)
        clean_index = (
            index_images(root / clean_dir, issues, wanted.__contains__) if clean_dir else {}
        )
        foggy_index = index_foggy_images(root / hazy_dir, issues, wanted) if hazy_dir else {}
        records = []
        for image_id in ids:
            xml_path = root / "Annotations" / f"{image_id}.xml"
            clean = None
            if clean_dir:
                clean = _check_image(
                    clean_index.get(image_id), "clean", issues, root / clean_dir / image_id
                )
                if clean is None:
                    continue
            hazy_paths = foggy_versions(foggy_index, image_id) if hazy_dir else [clean]
            if not hazy_paths:
                issues.report(root / hazy_dir / image_id, "foggy image missing", "sample skipped")
                continue
            # Boxes are pixels of the input image: its real size, not <size>, bounds them.
            annotation = parse_voc_xml(
                xml_path, class_names, issues, image_file_size(hazy_paths[0])
            )
            if annotation is None:
                continue
            if skip_empty and len(annotation.labels) == 0:
                continue
            records += [SampleRecord(image_id, path, clean, annotation) for path in hazy_paths]
        super().__init__(records, class_names, issues.strict)


class YoloFogDataset(RecordDataset):
    """Images with YOLO txt labels: ``<images_dir>/<id>.jpg`` + ``<labels_dir>/<id>.txt``.

    A foggy version ``<id>_<beta>.jpg`` takes ``<id>_<beta>.txt`` where it exists, else the
    image's ``<id>.txt`` (what `data voc2yolo` writes).

    ``clean_dir`` (optional) holds the clean originals, paired by file name as in VOC-FOG.
    """

    def __init__(
        self,
        images_dir: str | Path,
        labels_dir: str | Path,
        class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
        clean_dir: str | Path | None = None,
        strict: bool = False,
        issues: DataIssues | None = None,
    ):
        issues = issues if issues is not None else DataIssues(strict=strict)
        self.issues = issues
        images = index_images(images_dir, issues)
        # Clean originals are named like the foggy files, or like them less a _<beta> suffix.
        wanted = set(images) | {stem.rsplit("_", 1)[0] for stem in images}
        clean_index = index_images(clean_dir, issues, wanted.__contains__) if clean_dir else {}
        records = []
        for stem, hazy_path in images.items():
            image_id = stem
            clean = None
            if clean_dir:
                # Foggy files may carry a β suffix that the clean original's name lacks.
                clean_id = stem if stem in clean_index else stem.rsplit("_", 1)[0]
                clean = _check_image(clean_index.get(clean_id), "clean", issues, hazy_path)
                if clean is None:
                    continue
            # YOLO labels are normalised, so the pixel size is needed up front; decoding the
            # image for it also finds the unusable ones (corrupt, truncated) before training.
            image, problem = read_whole_image_file(hazy_path)
            if image is None:
                issues.report(hazy_path, problem, "sample skipped")
                continue
            height, width = image.shape[:2]
            annotation = read_yolo_labels(
                _label_file(Path(labels_dir), stem), width, height, len(class_names), issues
            )
            if annotation is None:
                continue
            records.append(SampleRecord(image_id, hazy_path, clean, annotation))
        super().__init__(records, class_names, issues.strict)


def _label_file(labels_dir: Path, stem: str) -> Path:
    """``<stem>.txt``; for a foggy version ``<id>_<beta>`` without its own, ``<id>.txt``.

    `data voc2yolo` writes one label file per image id, and `data fog --versions-per-image`
    several foggy files per id: every version shares the id's boxes.
    """
    own = labels_dir / f"{stem}.txt"
    clean_id = clean_id_of(stem)
    if own.exists() or clean_id is None:
        return own
    shared = labels_dir / f"{clean_id}.txt"
    return shared if shared.exists() else own
