"""README.md as a new user follows it: its tables and example commands match the code.

The parameter table is read the way Markdown renders it (a table ends at its first line that
is not a row), the example command lines are parsed by the real `togethernet` parser, and the
`-p name:=value` examples are checked by the node's own parameter validation.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from togethernet_ros.cli import SUBCOMMANDS, build_parser
from togethernet_ros.ros.node_settings import (
    PARAMETER_SPECS,
    SPECS_BY_NAME,
    TRACKING_PREFIX,
    check_value,
    flatten_parameters,
)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DETECT_YAML = REPO / "config" / "detect.yaml"
CODE_SPAN = re.compile(r"`([^`]*)`")


def _markdown_table(lines: list[str], header: str) -> list[list[str]]:
    """Cells of the table whose header row starts with `header`, as Markdown renders it."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[start + 1].strip()), "no delimiter row"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break  # a blank line (or any text) ends the table; later rows render as prose
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def _yaml_defaults() -> dict:
    document = yaml.safe_load(DETECT_YAML.read_text(encoding="utf-8"))
    return flatten_parameters(document["/**"]["ros__parameters"])


def _parameter_rows() -> list[tuple[list[str], list[str], str]]:
    """(names, default spans, notes) of each row of the README's parameter table."""
    rows = []
    for cells in _markdown_table(_readme_lines(), "| parameter | default |"):
        names = CODE_SPAN.findall(cells[0])
        defaults = CODE_SPAN.findall(cells[1])
        rows.append((names, defaults, cells[2] if len(cells) > 2 else ""))
    return rows


def test_parameter_table_covers_every_parameter_in_one_table() -> None:
    listed = {name for names, _, _ in _parameter_rows() for name in names}
    missing = [
        spec.name
        for spec in PARAMETER_SPECS
        if spec.name not in listed
        and not (spec.name.startswith(TRACKING_PREFIX) and "tracking.*" in listed)
    ]
    assert not missing, f"README parameter table (as rendered) lacks {missing}"
    unknown = listed - set(SPECS_BY_NAME) - {"tracking.*"}
    assert not unknown, f"README parameter table names parameters the node lacks: {unknown}"


def test_parameter_table_defaults_are_those_of_detect_yaml() -> None:
    defaults = _yaml_defaults()
    for names, spans, _ in _parameter_rows():
        if names == ["tracking.*"]:
            continue
        # One default span may stand for every name of the row ("onnx_path, engine_cache_dir").
        values = spans if len(spans) == len(names) else spans * len(names)
        assert len(values) == len(names), f"README row {names}: defaults {spans}"
        for name, text in zip(names, values, strict=True):
            assert yaml.safe_load(text) == defaults[name], (
                f"README says {name} defaults to {text}, config/detect.yaml has {defaults[name]!r}"
            )


def test_parameter_table_marks_run_time_parameters_as_the_node_declares_them() -> None:
    for names, _, notes in _parameter_rows():
        run_time = "run time" in notes
        for name in names:
            specs = (
                [s for s in PARAMETER_SPECS if s.name.startswith(TRACKING_PREFIX)]
                if name == "tracking.*"
                else [SPECS_BY_NAME[name]]
            )
            for spec in specs:
                assert run_time != spec.read_only, (
                    f"README marks {spec.name} {'run time' if run_time else 'read-only'}, "
                    f"the node declares it {'read-only' if spec.read_only else 'run time'}"
                )


def test_subcommand_table_lists_every_subcommand() -> None:
    rows = _markdown_table(_readme_lines(), "| subcommand |")
    listed = [CODE_SPAN.findall(cells[0])[0] for cells in rows]
    assert sorted(listed) == sorted(SUBCOMMANDS)


def _shell_commands() -> list[list[str]]:
    """Every command of the README's bash blocks, continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def _togethernet_arguments(words: list[str]) -> list[str] | None:
    """The `togethernet` arguments of a command line (also under torchrun), else None."""
    for index, word in enumerate(words):
        if word.endswith("togethernet_ros.cli") and words[index - 1] == "-m":
            return words[index + 1 :]
        if Path(word).name == "togethernet":
            return words[index + 1 :]
    return None


def test_example_togethernet_commands_parse() -> None:
    examples = [args for args in map(_togethernet_arguments, _shell_commands()) if args]
    assert len(examples) >= 10, "the README's examples of the togethernet command are gone"
    for arguments in examples:
        try:
            build_parser(arguments).parse_args(arguments)
        except SystemExit:
            pytest.fail(f"README example does not parse: togethernet {shlex.join(arguments)}")


def test_example_node_parameters_are_accepted_by_the_node() -> None:
    given = [
        words[index + 1]
        for words in _shell_commands()
        if any(Path(word).name == "detector_node" for word in words)
        for index, word in enumerate(words)
        if word == "-p"
    ]
    assert given, "the README's detector_node examples are gone"
    for assignment in given:
        name, _, value = assignment.partition(":=")
        assert name in SPECS_BY_NAME, f"README example sets unknown parameter {name}"
        check_value(SPECS_BY_NAME[name], yaml.safe_load(value))
