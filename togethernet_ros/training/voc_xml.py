"""Pascal VOC annotation files (Annotations/*.xml) and image-set lists (ImageSets/Main/*.txt)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from togethernet_ros.training.annotation import ImageAnnotation, checked_box
from togethernet_ros.training.data_issues import DataError, DataIssues


def read_image_set(path: str | Path) -> list[str]:
    """Image ids listed in a VOC ImageSets file (first token per non-empty line).

    Raises :class:`DataError` naming the file and line when the list is not UTF-8 text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image-set list not found: {path}")
    ids = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            # Not a skippable item: a list with one undecodable id is likely in another encoding
            # altogether, and guessing ids would silently pick the wrong files.
            raise DataError(f"{path}:{number}: not UTF-8 text ({error.reason})") from error
        tokens = line.split()
        # VOC per-class lists carry a second column (1 / -1 / 0); only the id matters here.
        if tokens:
            ids.append(tokens[0])
    return ids


def _int_text(element: ET.Element | None, default: int = 0) -> int:
    if element is None or element.text is None or not element.text.strip():
        return default
    value = float(element.text)
    if not math.isfinite(value):  # int() of inf raises OverflowError, which callers miss
        raise ValueError(f"{element.text.strip()!r} is not a finite number")
    return int(value)


def drop_namespaces(root: ET.Element) -> None:
    """Strip ``{uri}`` prefixes from every tag, in place.

    Some exporters put the annotation in an XML namespace (``<annotation xmlns=...>``); the
    VOC tags are the same, but ElementTree then names them ``{uri}object``, which no plain
    ``find("object")`` matches.
    """
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]


def _case_hint(name: str, class_names: Sequence[str]) -> str:
    """A "did you mean" note where ``name`` differs from a known class only in letter case."""
    same = [known for known in class_names if known.casefold() == name.casefold()]
    if not same:
        return ""
    return f" (did you mean '{same[0]}'? class names are matched exactly, as upstream does)"


def parse_voc_xml(
    path: str | Path,
    class_names: Sequence[str],
    issues: DataIssues,
    image_size: tuple[int, int] | None = None,
) -> ImageAnnotation | None:
    """Read one VOC XML file; returns None (after reporting) when the file is unusable.

    Objects of classes outside ``class_names`` and broken boxes are reported and dropped;
    boxes outside the image are clipped. Coordinates are kept exactly as written (VOC
    convention, as upstream's voc_annotation.py and get_map.py use them).

    ``image_size`` (width, height) is the image file's real pixel size where the caller knows
    it. It wins over a ``<size>`` that says otherwise (reported): boxes are pixels of the image,
    upstream never reads ``<size>``, and clipping to a wrong one would cut boxes short.
    """
    path = Path(path)
    if not path.is_file():
        issues.report(path, "annotation file missing", "sample skipped")
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line = error.position[0] if error.position else None
        issues.report(path, f"corrupt XML: {error}", "sample skipped", line)
        return None
    except OSError as error:
        issues.report(path, f"cannot be read ({error.strerror or error})", "sample skipped")
        return None
    drop_namespaces(root)
    if root.tag != "annotation":
        # Another tool's XML (a CVAT or COCO-style export) would otherwise read as an image
        # without objects: every box in it lost without a word.
        issues.report(
            path,
            f"not a VOC annotation: the root element is <{root.tag}>, not <annotation>",
            "sample skipped",
        )
        return None
    size = root.find("size")
    try:
        width = _int_text(size.find("width")) if size is not None else 0
        height = _int_text(size.find("height")) if size is not None else 0
    except ValueError as error:
        issues.report(path, f"bad <size>: {error}", "sample skipped")
        return None
    if image_size is not None:
        real_width, real_height = image_size
        if width > 0 and height > 0 and (width, height) != (real_width, real_height):
            hint = (
                " (turned: were the boxes drawn on the photo turned by its EXIF orientation? "
                "They are read on the stored pixel grid)"
                if (width, height) == (real_height, real_width)
                else ""
            )
            issues.report(
                path,
                f"<size> {width}x{height} disagrees with the image file's "
                f"{real_width}x{real_height}{hint}",
                "image size used",
            )
        width, height = real_width, real_height
    boxes, labels, difficult = [], [], []
    for number, obj in enumerate(root.iter("object"), start=1):
        name_element = obj.find("name")
        name = (name_element.text or "").strip() if name_element is not None else ""
        if name not in class_names:
            issues.report(
                path,
                f"object #{number}: unknown class '{name}'{_case_hint(name, class_names)}",
                "object dropped",
            )
            continue
        bndbox = obj.find("bndbox")
        try:
            box = tuple(float(bndbox.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            issues.report(path, f"object #{number}: missing or bad <bndbox>", "object dropped")
            continue
        try:
            is_difficult = _int_text(obj.find("difficult")) == 1
        except ValueError:
            flag = obj.find("difficult").text.strip()
            issues.report(
                path,
                f"object #{number}: bad <difficult> '{flag}' (expected 0 or 1)",
                "object dropped",
            )
            continue
        checked = checked_box(box, width, height, f"{path} object #{number}", issues)
        if checked is None:
            continue
        boxes.append(checked)
        labels.append(list(class_names).index(name))
        difficult.append(is_difficult)
    return ImageAnnotation(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(difficult, bool),
        width,
        height,
    )


def write_voc_xml(
    path: str | Path,
    filename: str,
    width: int,
    height: int,
    boxes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    difficult: np.ndarray | None = None,
) -> None:
    """Write a minimal VOC XML annotation (used by tools and tests that make datasets)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    for index, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[int(label)]
        flag = int(difficult[index]) if difficult is not None else 0
        ET.SubElement(obj, "difficult").text = str(flag)
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bndbox, tag).text = str(round(float(value)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path)
