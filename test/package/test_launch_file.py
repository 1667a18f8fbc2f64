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


def _run_launch_file(**given: str) -> dict:
    """Evaluate the launch file's node action with stand-ins for launch/launch_ros.

    `given` are the arguments on the `ros2 launch` command line; the others take their declared
    defaults, as launch does. Returns the keyword arguments of the launch_ros Node.
    """
    import importlib.util
    import sys
    import types

    class Declare:
        def __init__(self, name, default_value="", description=""):
            self.name, self.default = name, default_value

    class Configuration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Opaque:
        def __init__(self, function):
            self.function = function

    nodes = []
    stand_ins = {
        "ament_index_python": types.ModuleType("ament_index_python"),
        "ament_index_python.packages": types.SimpleNamespace(
            get_package_share_directory=lambda package: f"/opt/share/{package}"
        ),
        "launch": types.SimpleNamespace(LaunchDescription=list),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=Declare, OpaqueFunction=Opaque
        ),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=Configuration),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.SimpleNamespace(Node=lambda **kw: nodes.append(kw) or kw),
    }
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location("detect_launch", LAUNCH_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        actions = module.generate_launch_description()
    finally:
        for name, module_before in saved.items():
            if module_before is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module_before
    context = {a.name: a.default for a in actions if isinstance(a, Declare)} | given
    for action in actions:
        if isinstance(action, Opaque):
            action.function(context)
    assert len(nodes) == 1
    return nodes[0]


def test_launch_forwards_only_the_arguments_given():
    """A params file's `use_sim_time: true` must survive a launch without use_sim_time:=..."""
    node = _run_launch_file(params_file="/my/params.yaml")
    assert node["parameters"][0] == "/my/params.yaml"
    overrides = {k: v for entry in node["parameters"][1:] for k, v in entry.items()}
    assert overrides == {}, "an argument not given must leave the params file's value alone"
    node = _run_launch_file(use_sim_time="true", weights="/w.pt")
    overrides = {k: v for entry in node["parameters"][1:] for k, v in entry.items()}
    assert overrides == {"use_sim_time": True, "weights": "/w.pt"}
    node = _run_launch_file(use_sim_time="false")
    assert node["parameters"][1:] == [{"use_sim_time": False}]
