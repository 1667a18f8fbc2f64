"""`togethernet demo` refuses a params-file value without one (``[]``) only where its node lacks it.

The demo passes its own `input_size`, `device`, `weights` (with --weights) and
`allow_untrained_weights` to the node, after the params file, so the node gets a value for them
whatever the file says. It refused ``input_size: []`` in a demo params file all the same.
"""

from __future__ import annotations

import pytest

from togethernet_ros.bag.demo_command import _demo_weights
from togethernet_ros.cli import main

# Should a check regress, the demo would run for real: keep that short.
SMALL = ["--frames", "1", "--input-size", "128", "--device", "cpu"]


def _params(tmp_path, body: str):
    path = tmp_path / "params.yaml"
    path.write_text(f"detector:\n  ros__parameters:\n{body}")
    return path


def _demo_error(tmp_path, capsys, params, *options: str) -> str:
    """stderr of a demo that must stop at its option checks (rc 2, nothing written)."""
    output = tmp_path / "demo"
    command = ["demo", *SMALL, "--output", str(output), "--params-file", str(params), *options]
    assert main(command) == 2
    assert not output.exists()
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "body",
    [
        "    input_size: []\n    device: []\n    allow_untrained_weights: []\n",
        "    weights: []\n    input_size: []\n",
    ],
)
def test_values_the_demo_sets_itself_may_be_empty_in_the_file(tmp_path, capsys, body):
    # A missing --weights stops the demo right after the params file is accepted: the error
    # must be that one, not the params file's.
    missing = tmp_path / "typo.pt"
    error = _demo_error(tmp_path, capsys, _params(tmp_path, body), "--weights", str(missing))
    assert error.startswith(f"demo: --weights {missing} does not exist")
    assert "has no value" not in error


def test_a_value_the_node_would_lack_is_still_refused_by_name(tmp_path, capsys):
    # conf_threshold comes from the file alone: rcl gives [] no value and the node refuses it.
    params = _params(tmp_path, "    input_size: []\n    conf_threshold: []\n")
    error = _demo_error(tmp_path, capsys, params, "--weights", str(tmp_path / "typo.pt"))
    assert error.startswith(f"demo: params file {params}: parameter 'conf_threshold' has no value")
    assert "'input_size'" not in error


def test_the_demo_takes_the_files_weights_beside_values_it_sets(tmp_path):
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"checkpoint")
    params = _params(tmp_path, f"    weights: {mine}\n    input_size: []\n    device: []\n")
    assert _demo_weights(None, params, {"input_size": [128], "device": "cpu"}) == mine


@pytest.mark.parametrize("name", ["weights", "tracking.max_gap_s"])
def test_empty_values_the_demo_takes_from_the_file_are_refused(tmp_path, name):
    # No --weights: the demo runs the file's weights, so an empty one is the node's problem
    # too (and running untrained instead would hide it); tracking is never the demo's.
    key, _, sub = name.partition(".")
    body = f"    {key}:\n      {sub}: []\n" if sub else f"    {key}: []\n"
    params = _params(tmp_path, body + "    input_size: []\n")
    with pytest.raises(ValueError, match=rf"params file .*: parameter '{name}' has no value"):
        _demo_weights(None, params, {"input_size": [128], "device": "cpu"})
