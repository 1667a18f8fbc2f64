"""`togethernet demo` refuses bad options at once: before the sample bag and the node."""

from __future__ import annotations

import pytest

from togethernet_ros.cli import main

# Should a check regress, the demo would run for real: keep that short.
SMALL = ["--frames", "1", "--input-size", "128", "--device", "cpu"]


def test_missing_weights_are_an_error_not_a_silent_untrained_demo(tmp_path, capsys):
    output = tmp_path / "demo"
    missing = tmp_path / "typo.pt"
    assert main(["demo", *SMALL, "--output", str(output), "--weights", str(missing)]) == 2
    assert f"demo: --weights {missing} does not exist" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [b\n", " is not valid YAML: "),
        ("- a\n- b\n", ": expected a mapping of node names to ros__parameters"),
        ("train:\n  epochs: 3\n", ", line 2: 'epochs' must hold ros__parameters"),
        ("", " has no 'ros__parameters:' section for the node /detector"),
    ],
)
def test_a_broken_params_file_is_one_error(tmp_path, capsys, text, message):
    # Read as the node reads it (ros/params_file.py), worded as the node and `bag run` say it.
    params = tmp_path / "params.yaml"
    params.write_text(text)
    output = tmp_path / "demo"
    assert main(["demo", *SMALL, "--output", str(output), "--params-file", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"demo: params file {params}{message}")
    assert "Traceback" not in err and not output.exists()


def test_an_output_file_and_zero_frames_are_refused(tmp_path, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert main(["demo", *SMALL, "--output", str(existing)]) == 2
    assert f"demo: --output {existing} is a file" in capsys.readouterr().err
    assert existing.read_text() == "keep me"
    with pytest.raises(SystemExit):
        main(["demo", "--output", str(tmp_path / "demo"), "--frames", "0"])
    assert "argument --frames: must be >= 1, got 0" in capsys.readouterr().err
