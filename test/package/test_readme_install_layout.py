"""The package as a ROS 2 user installs it (README "On a ROS 2 workstation").

A wheel of the package is built from a copy of the source and unpacked the way an installer
lays it out (Python modules in one folder, `data_files` under the prefix), away from the source
tree. With only the ament index pointing at that prefix, the node's defaults (params file,
demo weights, Fast DDS profile) and the launch file's `params_file` default must resolve to the
installed files. package.xml must declare every ROS package the code imports, so that `rosdep
install` brings them.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "togethernet_ros"
# What setup.py installs; copied so the build leaves no build/ or egg-info in the source tree.
BUILD_INPUTS = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "models")
# Python packages that ship with ROS 2 (rosdep keys of the same name), as opposed to PyPI ones.
ROS_MODULES = {"rclpy", "launch", "launch_ros", "ament_index_python", "rosidl_runtime_py"}


def _is_ros_module(name: str) -> bool:
    return name in ROS_MODULES or name.endswith(("_msgs", "_interfaces"))


def _imported_top_level_modules(paths: list[Path]) -> dict[str, Path]:
    """Top-level module -> one file importing it (absolute imports only)."""
    found: dict[str, Path] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _package_xml_depends() -> set[str]:
    root = ElementTree.parse(REPO / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_export_depend")
    return {element.text.strip() for tag in tags for element in root.iter(tag)}


def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    sources = sorted((REPO / PACKAGE).rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))
    imported = _imported_top_level_modules(sources)
    ros_imports = {name: path for name, path in imported.items() if _is_ros_module(name)}
    assert {"rclpy", "sensor_msgs", "vision_msgs", "launch_ros"} <= set(ros_imports)
    missing = {
        name: str(path.relative_to(REPO))
        for name, path in ros_imports.items()
        if name not in _package_xml_depends()
    }
    assert not missing, f"package.xml lacks <exec_depend> for ROS packages imported by {missing}"


def _build_and_unpack_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """Build the package's wheel from a copy of the source; returns (site-packages, prefix)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name)
        else:
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("--disable-pip-version-check", "-w", str(wheels), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = wheels.glob(f"{PACKAGE}-*.whl")
    site, prefix = tmp_path / "site-packages", tmp_path / "prefix"
    # The layout an installer gives: `<name>.data/data/...` under the prefix, the rest in
    # site-packages (scripts are colcon's business, see test_colcon_build).
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            head, _, rest = member.partition("/")
            if head.endswith(".data"):
                scheme, _, relative = rest.partition("/")
                if scheme == "data":
                    target = prefix / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
            else:
                archive.extract(member, site)
    shutil.rmtree(source)
    shutil.rmtree(wheels)
    return site, prefix


# Run in a fresh interpreter that sees only the installed copy: launch/launch_ros are not on
# PyPI, so the launch file runs with minimal stand-ins for them and the real ament index.
PROBE = textwrap.dedent(
    """
    import json, sys, types
    from pathlib import Path

    import togethernet_ros
    from ament_index_python.packages import get_package_share_directory
    from togethernet_ros.bag.detector_options import _node_config_file
    from togethernet_ros.model.weights_path import resolve_weights_path
    from togethernet_ros.ros.local_dds import fastdds_profile_path
    from togethernet_ros.ros.node_settings import default_config_path, load_default_parameters

    class Declare:
        def __init__(self, name, default_value="", description=""):
            self.name, self.default = name, default_value

    stand_ins = {
        "launch": types.SimpleNamespace(LaunchDescription=list),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=Declare, OpaqueFunction=lambda function: None
        ),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=str),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.SimpleNamespace(Node=dict),
    }
    sys.modules.update(stand_ins)
    share = Path(get_package_share_directory("togethernet_ros"))
    launch_namespace = {"__name__": "detect_launch"}
    exec((share / "launch" / "detect.launch.py").read_text(), launch_namespace)
    declared = {
        action.name: action.default
        for action in launch_namespace["generate_launch_description"]()
        if isinstance(action, Declare)
    }
    config = default_config_path()
    weights = load_default_parameters(config)["weights"]
    print(json.dumps({
        "module": togethernet_ros.__file__,
        "share": str(share),
        "config": str(config),
        "bag_run_config": str(_node_config_file()),
        "weights_parameter": weights,
        "weights": str(resolve_weights_path(weights)),
        "fastdds_profile": str(fastdds_profile_path()),
        "launch_params_file": declared["params_file"],
    }))
    """
)


def test_installed_package_finds_its_share_files_through_the_ament_index(tmp_path) -> None:
    site, prefix = _build_and_unpack_wheel(tmp_path)
    share = prefix / "share" / PACKAGE
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), "the ament index marker (resource/togethernet_ros) is not installed"
    for relative in (
        "package.xml",
        "launch/detect.launch.py",
        "config/detect.yaml",
        "config/fastdds_localhost.xml",
        "config/train_default.yaml",
        "models/togethernet_vtest_384.pt",
        "models/togethernet_vtest_384.md",  # the model card next to the weights (README)
    ):
        assert (share / relative).is_file(), f"share/{PACKAGE}/{relative} is not installed"
    entry_points = next(site.glob(f"{PACKAGE}-*.dist-info")).joinpath("entry_points.txt")
    scripts = entry_points.read_text(encoding="utf-8")
    assert "detector_node = togethernet_ros.ros.detector_node:main" in scripts
    assert "togethernet = togethernet_ros.cli:main" in scripts

    elsewhere = tmp_path / "working_directory"
    elsewhere.mkdir()
    # Only the installed copy: the source tree and the editable install must not be reachable.
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(prefix))
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["module"]).is_relative_to(site), "the probe imported the source tree"
    assert Path(found["share"]) == share
    installed_config = share / "config" / "detect.yaml"
    assert Path(found["config"]) == installed_config
    assert Path(found["bag_run_config"]) == installed_config
    assert Path(found["launch_params_file"]) == installed_config
    source_weights = yaml.safe_load((REPO / "config" / "detect.yaml").read_text())["/**"][
        "ros__parameters"
    ]["weights"]
    assert found["weights_parameter"] == source_weights
    assert Path(found["weights"]) == share / source_weights
    assert Path(found["fastdds_profile"]) == share / "config" / "fastdds_localhost.xml"
