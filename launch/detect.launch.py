"""Launch the TogetherNet detector node.

    ros2 launch togethernet_ros detect.launch.py
    ros2 launch togethernet_ros detect.launch.py weights:=/path/to/togethernet.pt namespace:=front

Every parameter default lives in the params file (config/detect.yaml installed with the package);
this file only forwards what is given on the command line.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "togethernet_ros"
EXECUTABLE = "detector_node"


def _boolean_argument(name: str, text: str) -> bool:
    """A launch argument's true/false, spelt as launch conditions accept it (true/1, false/0).

    Anything else is refused: `use_sim_time:=yes` once meant false, and the node then measured
    a replayed bag's latencies against the wall clock without a word.
    """
    word = text.strip().lower()
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise ValueError(f"launch argument '{name}' must be true or false, got {text!r}")


def _detector(context, *args, **kwargs):
    parameters = [LaunchConfiguration("params_file").perform(context)]
    # Only an explicit argument overrides the YAML; an empty one leaves its value alone (a
    # params file may set use_sim_time: true for a simulator).
    overrides = {}
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context)
    if use_sim_time:
        overrides["use_sim_time"] = _boolean_argument("use_sim_time", use_sim_time)
    weights = LaunchConfiguration("weights").perform(context)
    if weights:
        overrides["weights"] = weights
    if overrides:
        parameters.append(overrides)
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="detector",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), "config", "detect.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=default_params,
                description="Node parameters (YAML); the installed config/detect.yaml by default",
            ),
            DeclareLaunchArgument(
                "weights",
                default_value="",
                description="TogetherNet checkpoint; empty keeps the params file's value",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace to push the node into"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="",
                description="true: use /clock (bag replay); empty keeps the params file's value "
                "(false unless it sets one)",
            ),
            DeclareLaunchArgument(
                "log_level", default_value="info", description="debug, info, warn, error"
            ),
            OpaqueFunction(function=_detector),
        ]
    )
