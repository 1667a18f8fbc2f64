#!/usr/bin/env python3
"""Download the ROS 2 runtime's wheels for a machine that cannot reach a package registry.

Run with the project's `.venv` Python (where the ROS 2 wheels are installed): the dependency
closure of `tools/ros-requirements-jazzy.txt` (plus rosbags) is read from the installed
distributions' metadata, and every distribution in it is downloaded for the target Python
(binary wheel for its platform, else the source distribution of a pure-Python package).
On the target, `python3 tools/setup_env.py --offline-wheels DIR` installs them.

    .venv/bin/python tools/offline_wheels.py .dev_ros --python-version 3.12 --pieces 2

`--pieces N` then spreads the files over DEST/part1..partN of about equal size, for transfers
with a size limit per call (the device tool's 64 MiB per call includes the repository).

Packages the target already has (its own torch, numpy, PyYAML, ...) can be left out with
`--skip`; the default skips what every Python image with PyTorch has.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TOOLS_DIR = Path(__file__).resolve().parent
ROOTS_FILE = TOOLS_DIR / "ros-requirements-jazzy.txt"
EXTRA_ROOTS = ("rosbags",)
DEFAULT_SKIP = "numpy,pyyaml,setuptools,typing-extensions,packaging,python-dateutil,six,pyparsing"
# manylinux tags that the ROS 2 and scientific wheels use (pip matches each tag exactly).
PLATFORMS = [
    "manylinux_2_39_x86_64",
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "linux_x86_64",
    "any",
]


def root_requirements() -> list[Requirement]:
    """The ROS 2 requirement lines plus the bag library."""
    lines = [line.split("#", 1)[0].strip() for line in ROOTS_FILE.read_text().splitlines()]
    return [Requirement(line) for line in [*lines, *EXTRA_ROOTS] if line]


def dependency_closure(roots: list[Requirement], python_version: str) -> dict[str, str]:
    """{canonical name: installed version} of everything `roots` need, with their extras."""
    environment = default_environment()
    environment["python_version"] = python_version
    environment["python_full_version"] = f"{python_version}.0"
    found: dict[str, str] = {}
    pending: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset()) for r in roots]
    while pending:
        requirement, parent_extras = pending.pop()
        marker_ok = requirement.marker is None or any(
            requirement.marker.evaluate({**environment, "extra": extra})
            for extra in (parent_extras or {""})
        )
        if not marker_ok:
            continue
        name = canonicalize_name(requirement.name)
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as error:
            raise SystemExit(
                f"{requirement.name} is needed but not installed in {sys.prefix}; "
                "run this with the project's .venv Python after `make setup`"
            ) from error
        extras = frozenset(requirement.extras)
        if name in found and not extras:
            continue
        found[name] = distribution.version
        for line in distribution.requires or []:
            pending.append((Requirement(line), extras))
    return found


def download(name: str, version: str, destination: Path, python_version: str) -> str:
    """Fetch one distribution for the target; returns 'wheel' or 'sdist'."""
    pip = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--dest",
        str(destination),
    ]
    target = ["--python-version", python_version, "--implementation", "cp"]
    target += [option for platform in PLATFORMS for option in ("--platform", platform)]
    wheel = [*pip, "--only-binary=:all:", *target, f"{name}=={version}"]
    if subprocess.run(wheel, capture_output=True, check=False).returncode == 0:
        return "wheel"
    # No wheel for the target: a pure-Python source package builds there with its setuptools.
    source = [*pip, "--no-binary=:all:", f"{name}=={version}"]
    result = subprocess.run(source, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"cannot download {name}=={version}: {result.stderr.strip()[-400:]}")
    return "sdist"


def split_into_pieces(files: list[Path], destination: Path, pieces: int) -> None:
    """Move `files` (largest first) into destination/part1..partN, always to the lightest."""
    parts = [destination / f"part{index + 1}" for index in range(pieces)]
    loads = [0] * pieces
    for part in parts:
        part.mkdir(exist_ok=True)
    for path in files:
        lightest = loads.index(min(loads))
        loads[lightest] += path.stat().st_size
        path.replace(parts[lightest] / path.name)
    print(
        "pieces: "
        + ", ".join(f"{p.name} {load / 1e6:.1f} MB" for p, load in zip(parts, loads, strict=True))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", type=Path, help="folder for the wheels")
    parser.add_argument("--python-version", default=f"{sys.version_info[0]}.{sys.version_info[1]}")
    parser.add_argument("--skip", default=DEFAULT_SKIP, help="comma-separated names to leave out")
    parser.add_argument("--pieces", type=int, default=1, help="split into DEST/part1..partN")
    args = parser.parse_args(argv)
    skip = {canonicalize_name(name) for name in args.skip.split(",") if name.strip()}
    closure = dependency_closure(root_requirements(), args.python_version)
    args.destination.mkdir(parents=True, exist_ok=True)
    kinds = {"wheel": 0, "sdist": 0}
    for name, version in sorted(closure.items()):
        if name in skip:
            continue
        kinds[download(name, version, args.destination, args.python_version)] += 1
    files = sorted(
        (path for path in args.destination.iterdir() if path.is_file()),
        key=lambda path: path.stat().st_size,
        reverse=True,
    )
    size = sum(path.stat().st_size for path in files)
    if args.pieces > 1:
        split_into_pieces(files, args.destination, args.pieces)
    print(
        f"{kinds['wheel']} wheels and {kinds['sdist']} source packages for Python "
        f"{args.python_version} in {args.destination} ({size / 1e6:.1f} MB); skipped: "
        f"{', '.join(sorted(skip & closure.keys())) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
