"""tools/requirements.txt: one exact pin per package for every Python the project supports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .tool_modules import load_tool


def pins_for(python: str, gpu: bool, numpy1: bool = False) -> dict[str, str]:
    """Package name -> pinned version that pip would install under `python` ("3.10", ...)."""
    environment = {"python_version": python, "python_full_version": f"{python}.0"}
    pins: dict[str, str] = {}
    for line in load_tool("setup_env").python_requirements(gpu, numpy1):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        (specifier,) = requirement.specifier  # exactly one exact pin
        assert specifier.operator == "==", line
        assert requirement.name not in pins, f"{requirement.name} pinned twice for {python}"
        pins[requirement.name] = specifier.version
    return pins


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
@pytest.mark.parametrize("numpy1", [False, True])
def test_every_supported_python_gets_one_pin_of_each_package(python, gpu, numpy1):
    pins = pins_for(python, gpu, numpy1)
    runtime = "onnxruntime-gpu" if gpu else "onnxruntime"
    assert {"torch", "numpy", runtime, "opencv-python-headless", "rosbags"} <= set(pins)
    assert ("onnxruntime" in pins) != gpu


def test_python_3_10_keeps_numpy_1_for_ros_humble():
    # Humble's (Ubuntu 22.04, Python 3.10) message modules are built against NumPy 1.x.
    assert pins_for("3.10", gpu=False)["numpy"].startswith("1.")
    assert pins_for("3.11", gpu=False)["numpy"].startswith("2.")


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_a_distribution_built_against_numpy_1_gets_the_numpy_1_set_on_any_python(python):
    # Jazzy and Kilted from apt (Ubuntu 24.04, Python 3.12) ship NumPy 1.26 and build their
    # message modules against it: NumPy 2 in front of it breaks every message import.
    pins = pins_for(python, gpu=False, numpy1=True)
    assert pins["numpy"] == "1.26.4"
    assert pins["opencv-python-headless"] == pins_for("3.10", gpu=False)["opencv-python-headless"]
    assert pins["onnxruntime"] == pins_for("3.10", gpu=False)["onnxruntime"]
    assert pins["torch"] == pins_for(python, gpu=False)["torch"]


def print_requirements(tmp_path: Path, numpy_version: str | None, distro: str | None) -> str:
    """`setup_env.py --print-requirements` run by this Python, which imports `numpy_version`."""
    env = {k: v for k, v in os.environ.items() if k != "ROS_DISTRO"}
    if distro:
        env["ROS_DISTRO"] = distro
    if numpy_version:
        # The NumPy the Python running setup_env imports decides; a module named numpy first
        # on the path stands for a distribution's.
        (tmp_path / "numpy.py").write_text(f"__version__ = {numpy_version!r}\n")
        env["PYTHONPATH"] = str(tmp_path)
    script = Path(__file__).resolve().parents[2] / "tools" / "setup_env.py"
    result = subprocess.run(
        [sys.executable, str(script), "--print-requirements"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_print_requirements_picks_numpy_1_for_a_sourced_distribution_that_has_it(tmp_path):
    lines = print_requirements(tmp_path, "1.26.4", distro="jazzy").splitlines()
    assert "numpy==1.26.4" in lines
    assert not any(line.startswith("numpy==2") for line in lines)


def test_print_requirements_keeps_numpy_2_without_a_distribution(tmp_path):
    lines = print_requirements(tmp_path, "1.26.4", distro=None).splitlines()
    assert 'numpy==2.4.6; python_version >= "3.11"' in lines
    lines = print_requirements(tmp_path, "2.4.6", distro="rolling").splitlines()
    assert 'numpy==2.4.6; python_version >= "3.11"' in lines
