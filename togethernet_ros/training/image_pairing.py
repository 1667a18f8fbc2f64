"""Pair foggy images with their clean originals by file name (the VOC-FOG layout).

A foggy file is named like its clean original, optionally with a ``_<beta>`` suffix
(``000012.jpg`` or ``000012_0.07.jpg`` pairs with clean ``000012.jpg``); one clean image may
have several foggy versions, each of which becomes its own training sample.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from togethernet_ros.vision.image_file import IMAGE_SUFFIXES

_BETA_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<beta>\d+(?:\.\d+)?)$")


def index_images(directory: str | Path) -> dict[str, Path]:
    """Map file stem → image path for every image file directly inside ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory not found: {directory}")
    return {
        path.stem: path
        for path in sorted(directory.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    }


def index_foggy_images(directory: str | Path) -> dict[str, list[Path]]:
    """Map clean image id → its foggy versions (exact-stem file first, then by β suffix)."""
    versions: dict[str, list[Path]] = defaultdict(list)
    images = index_images(directory)
    for stem, path in images.items():
        versions[stem].append(path)
        # "2008_000001" also reads as id "2008" with β 000001; foggy_versions() prefers exact ids.
        match = _BETA_SUFFIX.match(stem)
        if match:
            versions[match.group("stem")].append(path)
    return dict(versions)


def foggy_versions(foggy_index: dict[str, list[Path]], image_id: str) -> list[Path]:
    """Foggy files for ``image_id``: the exact name if present, else all ``<id>_<beta>`` files."""
    candidates = foggy_index.get(image_id, [])
    exact = [path for path in candidates if path.stem == image_id]
    return exact or candidates
