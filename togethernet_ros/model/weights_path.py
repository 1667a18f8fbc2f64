"""Where a relative weights path points: the working directory, then the package's own files.

`config/detect.yaml` names the shipped demo weights as `models/<file>.pt`. That must work from a
source checkout (any working directory), from an editable install, and from a colcon install
where the file lives in `share/togethernet_ros/models/`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PACKAGE_NAME = "togethernet_ros"


def _package_roots() -> list[Path]:
    roots = [Path(__file__).resolve().parents[2]]  # the source tree (or site-packages parent)
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:  # no ROS 2 here: only the source tree
        return roots
    # PackageNotFoundError is a KeyError; no AMENT_PREFIX_PATH is an OSError.
    with contextlib.suppress(LookupError, ValueError, OSError):
        roots.append(Path(get_package_share_directory(PACKAGE_NAME)))
    return roots


def resolve_weights_path(weights: str | Path) -> Path:
    """Absolute path for `weights`; relative ones are looked up in the CWD, then the package.

    Returns the first existing candidate, or the CWD-relative path when none exists (so that
    the error about a missing file names what the user wrote).
    """
    path = Path(weights).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve() if path.exists() else path
    for root in _package_roots():
        candidate = root / path
        if candidate.is_file():
            return candidate
    return path
