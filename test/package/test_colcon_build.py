"""`colcon build` installs the package with its launch, config and models share files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_colcon_build_installs_share_files(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.fail(f"colcon is not installed next to {sys.executable}; run make setup")
    # Build a copy so the source tree gets no build artefacts.
    source = tmp_path / "src" / "togethernet_ros"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "install",
            "log",
            "demo_out",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            "test",
            "tools",
            "benchmarks",
            "docs",
        ),
    )
    env = dict(os.environ, COLCON_HOME=str(tmp_path / "colcon_home"))
    result = subprocess.run(
        [
            str(colcon),
            "build",
            "--base-paths",
            str(tmp_path / "src"),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
            "--event-handlers",
            "console_direct-",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    share = tmp_path / "install" / "togethernet_ros" / "share" / "togethernet_ros"
    assert (share / "launch" / "detect.launch.py").is_file()
    assert (share / "config" / "detect.yaml").is_file()
    assert (share / "config" / "fastdds_localhost.xml").is_file()
    assert (share / "models" / "README.md").is_file()
    assert (share / "package.xml").is_file()
    index = tmp_path / "install" / "togethernet_ros" / "share" / "ament_index"
    assert (index / "resource_index" / "packages" / "togethernet_ros").is_file()
    executables = tmp_path / "install" / "togethernet_ros" / "lib" / "togethernet_ros"
    assert (executables / "detector_node").is_file()
    assert (executables / "togethernet").is_file()
