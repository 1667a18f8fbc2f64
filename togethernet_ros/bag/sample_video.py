"""The real sample video: OpenCV's vtest.avi (768×576, 10 fps, people on a campus path).

Fetched by package name from Debian's ``opencv-doc`` with the ordinary apt client; only the one
file is extracted (the package is ~96 MB, the video 8 MB) and the .deb is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from togethernet_ros.evaluation.atomic_write import process_is_gone
from togethernet_ros.inference.factory import default_cache_dir

PACKAGE = "opencv-doc"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VIDEO_NAME = "vtest.avi"


class SampleVideoError(RuntimeError):
    """The sample video could not be fetched (says why and what to do instead)."""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _download_deb(cache_dir: Path) -> Path:
    result = _run(["apt-get", "download", PACKAGE], cache_dir)
    if result.returncode != 0:
        # A fresh machine often has empty package lists; refresh them once and retry.
        update = _run(["apt-get", "update"], cache_dir)
        result = _run(["apt-get", "download", PACKAGE], cache_dir)
        if result.returncode != 0:
            hint = (
                ""
                if update.returncode == 0
                else f"; apt-get update also failed: {update.stderr.strip()[-300:]}"
            )
            raise SampleVideoError(
                f"`apt-get download {PACKAGE}` failed: {result.stderr.strip()[-400:]}{hint}. "
                "Pass a video of your own with --video PATH."
            )
    debs = sorted(cache_dir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise SampleVideoError(f"apt-get reported success but no {PACKAGE}_*.deb in {cache_dir}")
    return debs[-1]


def _remove_dead_fetches(cache_dir: Path) -> None:
    """Delete the folders of fetches that were killed (each may hold the ~96 MB .deb)."""
    for folder in cache_dir.glob(".fetch-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and process_is_gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def fetch_sample_video(cache_dir: Path | None = None) -> Path:
    """Return the path of vtest.avi in ``cache_dir``, fetching it with apt on first use."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache_dir / VIDEO_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SampleVideoError(
                f"{tool} is not available, so the sample video ({PACKAGE}'s vtest.avi) cannot be "
                "fetched on this machine. Pass a video of your own with --video PATH."
            )
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Each fetch downloads and extracts in a folder of its own: two demos starting together
    # (or a killed one's leftovers) never delete or rename each other's .deb or partial video.
    _remove_dead_fetches(cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix=f".fetch-{os.getpid()}-", dir=cache_dir))
    partial = workdir / f"{VIDEO_NAME}.part"
    try:
        deb = _download_deb(workdir)
        with partial.open("wb") as sink:
            unpack = subprocess.Popen(
                ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
            )
            extract = subprocess.run(
                ["tar", "x", "-O", MEMBER], stdin=unpack.stdout, stdout=sink, check=False
            )
            assert unpack.stdout is not None
            unpack.stdout.close()
            unpack_status = unpack.wait()
        if extract.returncode != 0 or unpack_status != 0 or partial.stat().st_size == 0:
            raise SampleVideoError(f"could not extract {MEMBER} from {deb}")
        partial.replace(target)  # atomic: a concurrent fetch's identical file, or this one
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return target
