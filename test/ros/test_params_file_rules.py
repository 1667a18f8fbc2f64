"""Our one params-file reader (ros/params_file.py) against rcl itself, on real files.

Each case is read twice: by our reader, and by rcl through rclpy (``--ros-args --params-file``),
whose parameter overrides for the node are what the node really gets.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.rcl_overrides import rcl_parameter_overrides

from togethernet_ros.ros.node_settings import (
    SettingsError,
    default_config_path,
    load_default_parameters,
)
from togethernet_ros.ros.params_file import (
    ParamsFileError,
    node_parameters,
    read_sections,
    ros_value,
)

pytestmark = pytest.mark.ros

SECTIONS = """
detector:
  ros__parameters: {x: 1, order: plain_name}
/**:
  ros__parameters: {x: 2, y: 2, order: any_node}
/**/detector:
  ros__parameters: {z: 3}
/*:
  ros__parameters: {root_only: 4}
/front/detector:
  ros__parameters: {front: 5}
front:
  detector:
    ros__parameters: {nested: 6, tracking: {min_hits: 7}}
/front/*:
  ros__parameters: {front_any: 8}
/lidar_driver:
  ros__parameters: {x: 99}
"""
LATER = """
/**:
  ros__parameters: {order: any_node_again, later: true}
"""


def _rcl_overrides(tmp_path: Path, files: list[Path], fqn: str, *extra: str) -> dict:
    """The parameter overrides rcl gives a node named ``fqn`` for these params files."""
    namespace, _, name = fqn.rpartition("/")
    arguments = ["node", "--ros-args", *extra]
    for path in files:
        arguments += ["--params-file", str(path)]
    return rcl_parameter_overrides(arguments, name, namespace or "/")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("fqn", ["/detector", "/front/detector", "/a/b/detector", "/fog"])
def test_sections_apply_and_merge_as_rcl_merges_them(tmp_path, fqn):
    sections = _write(tmp_path, "sections.yaml", SECTIONS)
    later = _write(tmp_path, "later.yaml", LATER)
    for files in ([sections], [sections, later], [later, sections]):
        ours = node_parameters(files, fqn)
        assert ours == _rcl_overrides(tmp_path, files, fqn), (fqn, files)
    # What the cases show: in /front, `/**`, `/**/detector`, `/front/detector`, the nested
    # `front: detector:` and `/front/*` apply, a plain `detector:` section does not; and a
    # section named again in a later file keeps its first place among the sections.
    assert node_parameters([sections], "/front/detector") == {
        "x": 2, "y": 2, "order": "any_node", "z": 3, "front": 5, "nested": 6,
        "tracking.min_hits": 7, "front_any": 8,
    }  # fmt: skip
    assert node_parameters([later, sections], "/detector")["order"] == "plain_name"


SCALARS = [
    "1e-3", "-1E3", "+5", "+1.5", "0x1F", "017", "08", ".5", "5.", "1_000", "0o17", "0b101",
    ".inf", "-.inf", "Infinity", "true", "Yes", "y", "N", "off", "OFF", "tRue", "~", "null",
    "'1e-3'", '"y"', "!!str 5", "!!float 5", "2024-01-01", "1e400", "12abc",
    "9223372036854775808", "[1e-3, 2.0]", "[a, b]", "[true, n]", "[]",
]  # fmt: skip


def test_scalars_are_typed_as_rcl_types_them_not_as_yaml_1_1(tmp_path):
    lines = "".join(f"    k{index}: {text}\n" for index, text in enumerate(SCALARS))
    path = _write(tmp_path, "scalars.yaml", f"/**:\n  ros__parameters:\n{lines}")
    ours = node_parameters([path], "/detector")
    rcl = _rcl_overrides(tmp_path, [path], "/detector")
    for index, text in enumerate(SCALARS):
        mine, theirs = ours[f"k{index}"], rcl[f"k{index}"]
        assert type(mine) is type(theirs) and mine == theirs, (text, mine, theirs)
    # The cases that PyYAML (YAML 1.1) reads otherwise: 1e-3 as text, 017 and 0o17 as octal...
    assert ours["k0"] == 0.001 and ours["k5"] == 15 and ours["k10"] == "0o17"
    assert ours["k17"] is True and ours["k22"] == "~"
    assert ros_value("1e-3") == 0.001 and ros_value("'1e-3'") == "1e-3"
    assert ros_value("[384, 640]") == [384, 640]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "/**:\n  ros__parameters:\n    k: [0.5, 0]\n",
            "line 3: the list mixes double and integer",
        ),
        ("/**:\n  ros__parameters:\n    k:\n", "line 3: no value"),
        ("/det*:\n  ros__parameters:\n    k: 1\n", r"line 1: section '/det\*' is not a node name"),
        (
            "/**:\n  ros__parameters:\n    conf_threshold: {}\n    iou_threshold: 0.5\n",
            r"line 3: 'conf_threshold' is an empty mapping \{\}, which rcl refuses or misreads",
        ),
        (
            "/**:\n  ros__parameters:\n    tracking:\n      max_age: {}\n    k: 1\n",
            r"line 4: 'tracking.max_age' is an empty mapping \{\}",
        ),
    ],
)
def test_files_rcl_refuses_are_refused_naming_file_and_line(tmp_path, text, message):
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(ParamsFileError, match=message) as refused:
        read_sections([path])
    assert str(path) in str(refused.value)
    with pytest.raises(_rclpy.RCLError, match="Couldn't parse params file"):
        _rcl_overrides(tmp_path, [path], "/detector")


def test_an_empty_mapping_rcl_misreads_without_refusing_is_refused_too(tmp_path):
    """`{}` read as "no value": where no key follows, rcl starts but files keys wrongly."""
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    nested = _write(
        tmp_path, "nested.yaml", "/**:\n  ros__parameters:\n    t:\n      a: {}\n      b: 1\n"
    )
    # rcl never closes the empty `a`: `b` becomes t.a.b instead of t.b.
    assert _rcl_overrides(tmp_path, [nested], "/detector") == {"t.a.b": 1}
    with pytest.raises(ParamsFileError, match=rf"{nested}, line 4: 't.a' is an empty mapping"):
        read_sections([nested])
    last = _write(tmp_path, "last.yaml", "/**:\n  ros__parameters:\n    x: 1\n    k: {}\n")
    with pytest.raises(ParamsFileError, match=r"line 4: 'k' is an empty mapping"):
        read_sections([last])
    # rcl refuses the same value given with -p, as we do.
    with pytest.raises(ParamsFileError, match="expected a value"):
        ros_value("{}")
    with pytest.raises(_rclpy.RCLError, match="Couldn't parse parameter override rule"):
        _rcl_overrides(tmp_path, [], "/detector", "-p", "k:={}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/**:\n  ros__parameters: {k: [1, 2\n", "line 3, column 1: expected ',' or ']'"),
        ("/**:\n  ros__parameters:\n    k: 1\n   j: 2\n", "line 4, column 4: expected <block end>"),
        ("/**:\n  ros__parameters:\n    k: 'x\x00'\n", "line 3, column 10: unacceptable character"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1: but found another document"),
    ],
)
def test_invalid_yaml_is_one_line_naming_file_line_column_and_problem(tmp_path, text, problem):
    """The message was PyYAML's dump over several lines, `in "<unicode string>"` and a caret."""
    path = _write(tmp_path, "broken.yaml", text)
    with pytest.raises(ParamsFileError) as refused:
        read_sections([path])
    message = str(refused.value)
    assert message.startswith(f"params file {path} is not valid YAML: {problem}"), message
    assert "\n" not in message and "<unicode string>" not in message and "^" not in message


def test_the_node_defaults_merge_every_section_and_read_numbers_as_rcl(tmp_path):
    """The defaults reader took the first section only and read 1e-3 as text."""
    shipped = default_config_path().read_text()
    path = _write(
        tmp_path,
        "detect.yaml",
        shipped
        + "/**/detector:\n  ros__parameters:\n    conf_threshold: 1e-1\n"
        + "    tracking:\n      process_noise: 2.5e-1\n",
    )
    defaults = load_default_parameters(path)
    assert defaults["conf_threshold"] == 0.1 and defaults["tracking.process_noise"] == 0.25
    assert defaults == {**load_default_parameters(default_config_path()), **defaults}
    with pytest.raises(SettingsError, match="no 'ros__parameters' section for /detector"):
        load_default_parameters(_write(tmp_path, "other.yaml", "lidar:\n  ros__parameters: {}\n"))


def test_the_replay_overlay_wins_over_every_section_of_the_params_file(tmp_path):
    """The overlay went into `/**`, which rcl places before a file's `detector:` section."""
    from togethernet_ros.ros.bag_replay import _node_parameter
    from togethernet_ros.ros.replay_node_process import NodeProcess

    params = _write(
        tmp_path,
        "robot.yaml",
        "/**:\n  ros__parameters:\n    use_sim_time: false\n"
        "detector:\n  ros__parameters:\n    output_reliability: best_effort\n"
        "    conf_threshold: 0.3\n",
    )
    overlay = {"output_reliability": "reliable", "weights": "1e-3", "conf_threshold": 0.5}
    process = NodeProcess(params, overlay, env={})
    try:
        arguments = process.command[process.command.index("--ros-args") + 1 :]
        received = _rcl_overrides(tmp_path, [], "/detector", *arguments)
    finally:
        process.cleanup()
    # The string stays a string: a bare 1e-3 in the overlay file is a number to rcl.
    assert received["weights"] == "1e-3"
    assert (received["output_reliability"], received["conf_threshold"]) == ("reliable", 0.5)
    # And the replay predicts what the node gets, for its own subscriptions' QoS.
    assert _node_parameter(params, overlay, "output_reliability", "?") == "reliable"
    assert _node_parameter(params, {}, "output_reliability", "?") == "best_effort"
    assert math.isclose(_node_parameter(params, {}, "conf_threshold", 0.0), 0.3)


def test_the_overlay_wins_when_the_params_file_names_every_usual_match_all_section(tmp_path):
    """With all of OVERLAY_SECTIONS in the file, the overlay joined its `/**/**` and lost."""
    from togethernet_ros.ros.bag_replay import _node_parameter
    from togethernet_ros.ros.replay_node_process import (
        OVERLAY_SECTIONS,
        NodeProcess,
        overlay_section,
    )

    usual = "".join(
        f"{name}:\n  ros__parameters:\n    use_sim_time: false\n" for name in OVERLAY_SECTIONS
    )
    node_section = "detector:\n  ros__parameters:\n    conf_threshold: 0.3\n"
    params = _write(tmp_path, "robot.yaml", usual + node_section)
    taken = _write(
        tmp_path, "taken.yaml", usual + "/**/**/**:\n  ros__parameters: {}\n" + node_section
    )
    for path in (params, taken):
        process = NodeProcess(path, {"conf_threshold": 0.5}, env={})
        try:
            arguments = process.command[process.command.index("--ros-args") + 1 :]
            for fqn in ("/detector", "/front/detector"):
                received = _rcl_overrides(tmp_path, [], fqn, *arguments)
                assert received["conf_threshold"] == 0.5, (path, fqn)
        finally:
            process.cleanup()
        # And the replay predicts what the node gets.
        assert math.isclose(
            _node_parameter(path, {"conf_threshold": 0.5}, "conf_threshold", 0), 0.5
        )
    assert (overlay_section(params), overlay_section(taken)) == ("/**/**/**", "/**/**/**/**")


def test_a_command_line_value_lost_to_a_node_section_is_named_with_its_cause(tmp_path):
    """rcl files -p under `/**`; a later `detector:` section wins: the warning blamed the kind."""
    import os
    import subprocess
    import sys

    params = _write(
        tmp_path,
        "robot.yaml",
        "/**:\n  ros__parameters:\n    use_sim_time: false\n"
        "detector:\n  ros__parameters:\n    conf_threshold: 0.3\n",
    )
    assert (
        _rcl_overrides(tmp_path, [params], "/detector", "-p", "conf_threshold:=0.6")[
            "conf_threshold"
        ]
        == 0.3
    )  # rcl itself
    # weights '' without allow_untrained_weights: configure fails and the process ends at once.
    node = Path(sys.executable).parent / "detector_node"
    result = subprocess.run(
        [str(node), "--ros-args", "--params-file", str(params), "-p", "conf_threshold:=0.6",
         "-p", "weights:=''"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:]
    assert (
        "-p conf_threshold:=0.6 did not reach the node, which runs with 0.3 from the params "
        "file: rcl files -p values under '/**', and a params-file section naming this node"
    ) in result.stdout, result.stdout[-2000:]


def test_the_overlay_wins_over_a_file_rcl_reads_but_we_cannot(tmp_path):
    """A trailing `name: {}`: rcl starts with the file; the overlay joined its `/**` and lost."""
    from togethernet_ros.ros.replay_node_process import NodeProcess

    text = (
        "/**:\n  ros__parameters:\n    use_sim_time: false\n"
        "detector:\n  ros__parameters:\n    conf_threshold: 0.3\n    classes: {}\n"
    )
    params = _write(tmp_path, "robot.yaml", text)
    process = NodeProcess(params, {"conf_threshold": 0.5}, env={})
    try:
        arguments = process.command[process.command.index("--ros-args") + 1 :]
        assert _rcl_overrides(tmp_path, [], "/detector", *arguments)["conf_threshold"] == 0.5
    finally:
        process.cleanup()
