"""`bag replay -p name:=value` overrides are checked before the node starts.

rcl keeps the params file's value when a later override has another type, so the node alone
would run `-p publish_dehazed:=maybe` with the file's value and never say so.
"""

from __future__ import annotations

import pytest

from togethernet_ros.bag.bag_replay_command import parse_overrides
from togethernet_ros.cli import main


def test_overrides_are_parsed_as_yaml_and_checked_by_name():
    parsed = parse_overrides(
        ["conf_threshold:=0.4", "input_size:=[384, 640]", "torch_compile:=off", "classes:=[car]"]
    )
    assert parsed == {
        "conf_threshold": 0.4,
        "input_size": [384, 640],
        "torch_compile": "off",
        "classes": ["car"],
    }


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("publish_dehazed:=maybe", "'publish_dehazed' must be true or false"),
        ("conf_threshold:=high", "'conf_threshold'"),
        ("conf_treshold:=0.4", "no parameter 'conf_treshold'"),
        ("input_size:=[300, 640]", "not a multiple of 128"),
        ("conf_threshold", "must look like name:=value"),
    ],
)
def test_a_bad_override_is_refused_by_name_before_anything_runs(
    tmp_path, capsys, override, problem
):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("not read: the override is refused first\n")
    status = main(["bag", "replay", str(bag), "-p", override])
    error = capsys.readouterr().err
    assert status == 2, error
    assert problem in error
