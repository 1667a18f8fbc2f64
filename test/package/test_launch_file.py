"""Static checks of launch/detect.launch.py (ros2 launch needs a full ROS 2 distribution)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "detect.launch.py"


def _string_constants(tree: ast.AST) -> dict[str, str]:
    constants = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    constants[target.id] = node.value.value
    return constants


def _declared_arguments(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "DeclareLaunchArgument"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(node.args[0].value)
    return names


def test_launch_file_parses_and_declares_the_documented_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text())
    assert any(
        isinstance(node, ast.FunctionDef) and node.name == "generate_launch_description"
        for node in tree.body
    )
    assert sorted(_declared_arguments(tree)) == sorted(
        ["params_file", "weights", "namespace", "use_sim_time", "log_level"]
    )


def test_launch_file_names_the_installed_package_and_executable():
    constants = _string_constants(ast.parse(LAUNCH_FILE.read_text()))
    setup_py = (REPO / "setup.py").read_text()
    assert constants["PACKAGE"] == "togethernet_ros"
    assert re.search(r'PACKAGE_NAME = "togethernet_ros"', setup_py)
    assert f"{constants['EXECUTABLE']} = " in setup_py
    package_xml = (REPO / "package.xml").read_text()
    assert "<name>togethernet_ros</name>" in package_xml


def test_launch_defaults_come_only_from_the_params_file():
    text = LAUNCH_FILE.read_text()
    assert '"config", "detect.yaml"' in text
    # No node parameter default is repeated in the launch file.
    for parameter in ("conf_threshold", "image_topics", "input_size", "backend"):
        assert parameter not in text
    setup_py = (REPO / "setup.py").read_text()
    assert 'glob("config/*.yaml")' in setup_py and 'glob("launch/*.launch.py")' in setup_py
    assert (REPO / "config" / "detect.yaml").is_file()
