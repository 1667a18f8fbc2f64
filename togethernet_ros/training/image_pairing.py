"""The image folders of a dataset: files indexed by id, foggy versions paired with clean
originals by file name (the VOC-FOG layout), and each file read whole or refused with a reason.

A foggy file is named like its clean original, optionally with a ``_<beta>`` suffix
(``000012.jpg`` or ``000012_0.07.jpg`` pairs with clean ``000012.jpg``); one clean image may
have several foggy versions, each of which becomes its own training sample.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection
from pathlib import Path

from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.vision.image_file import IMAGE_SUFFIXES

_BETA_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<beta>\d+(?:\.\d+)?)$")


def index_images(
    directory: str | Path, issues: DataIssues, wanted: Callable[[str], bool] | None = None
) -> dict[str, Path]:
    """Map file stem → image path for every image file directly inside ``directory``.

    ``wanted`` (stem → bool) limits the index to the files a dataset uses, so that files of
    other image sets are neither indexed nor reported. Entries named like images that are no
    files (a folder ``x.jpg``, a broken link) are reported and left out. Two files with one
    stem (``a.jpg`` and ``a.png``) are one id: the last in name order is used and the other one
    reported, never dropped without a word.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory not found: {directory}")
    index: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if wanted is not None and not wanted(path.stem):
            continue
        if not path.is_file():
            what = "a directory" if path.is_dir() else "a broken link or not a regular file"
            issues.report(path, f"named like an image but {what}", "entry ignored")
            continue
        earlier = index.get(path.stem)
        if earlier is not None:
            issues.report(
                earlier,
                f"image id '{path.stem}' has two files, {earlier.name} and {path.name}; "
                f"{path.name} is used",
                "duplicate file ignored",
            )
        index[path.stem] = path
    return index


def index_foggy_images(
    directory: str | Path, issues: DataIssues, ids: Collection[str] | None = None
) -> dict[str, list[Path]]:
    """Map clean image id → its foggy versions (exact-stem file first, then by β suffix).

    ``ids`` limits the index to the foggy files of those clean ids (None: every file).
    """
    versions: dict[str, list[Path]] = defaultdict(list)
    wanted = None if ids is None else _foggy_file_of(ids)
    images = index_images(directory, issues, wanted)
    for stem, path in images.items():
        versions[stem].append(path)
        # "2008_000001" also reads as id "2008" with β 000001; foggy_versions() prefers exact ids.
        match = _BETA_SUFFIX.match(stem)
        if match:
            versions[match.group("stem")].append(path)
    return dict(versions)


def clean_id_of(foggy_stem: str) -> str | None:
    """The clean image id a ``<id>_<beta>`` foggy file stem names (None without a β suffix)."""
    match = _BETA_SUFFIX.match(foggy_stem)
    return match.group("stem") if match else None


def _foggy_file_of(ids: Collection[str]) -> Callable[[str], bool]:
    """Whether a foggy file stem is ``<id>`` or ``<id>_<beta>`` of one of ``ids``."""
    ids = set(ids)

    def wanted(stem: str) -> bool:
        match = _BETA_SUFFIX.match(stem)
        return stem in ids or (match is not None and match.group("stem") in ids)

    return wanted


def foggy_versions(foggy_index: dict[str, list[Path]], image_id: str) -> list[Path]:
    """Foggy files for ``image_id``: the exact name if present, else all ``<id>_<beta>`` files."""
    candidates = foggy_index.get(image_id, [])
    exact = [path for path in candidates if path.stem == image_id]
    return exact or candidates
