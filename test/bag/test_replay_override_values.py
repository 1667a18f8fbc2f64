"""`bag replay -p` reads values as the node's own command line does (review of today's checks).

The replay checks each override before the node starts; it must not refuse what rcl gives the
node as meant, and a value YAML cannot read is a one-line error, not a traceback.
"""

from __future__ import annotations

from togethernet_ros.bag.bag_replay_command import parse_overrides
from togethernet_ros.cli import main


def test_an_exponent_without_a_dot_is_a_number_as_rcl_reads_it():
    # PyYAML reads 1e-2 as text; `detector_node --ros-args -p tracking.process_noise:=1e-2`
    # runs with 0.01, so the replay refused ("must be a finite number, got '1e-2'") a value
    # the node takes.
    parsed = parse_overrides(["tracking.process_noise:=1e-2", "max_batch_wait_ms:=5E0"])
    assert parsed == {"tracking.process_noise": 0.01, "max_batch_wait_ms": 5.0}
    assert isinstance(parsed["tracking.process_noise"], float)


def test_text_for_a_number_is_still_refused_by_name(tmp_path, capsys):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("not read: the override is refused first\n")
    assert main(["bag", "replay", str(bag), "-p", "conf_threshold:=nan"]) == 2
    assert "'conf_threshold' must be a finite number" in capsys.readouterr().err


def test_a_value_yaml_cannot_read_is_a_one_line_error(tmp_path, capsys):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("not read: the override is refused first\n")
    status = main(["bag", "replay", str(bag), "-p", "classes:=[car"])
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.strip().splitlines() == [
        "bag replay: -p classes: '[car' is not a YAML value: while parsing a flow sequence"
    ]
