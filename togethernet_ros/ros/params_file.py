"""ROS 2 params files and ``-p`` values read as rcl reads them, for every reader in the package.

Plain Python (PyYAML, no rclpy), so the bag commands and the node's defaults use the same rules
as the node started with ``--params-file``:

- Sections are node names, nested keys joined by ``/`` (``ns: {detector: ...}`` is
  ``ns/detector``) down to ``ros__parameters``; below it keys join by ``.``.
- A section applies to a node when its name matches the node's fully qualified name: a relative
  name is taken from the root namespace, ``*`` matches one name token and ``**`` any number.
- Every applying section is merged in the order the sections first appeared (over all files,
  in the order given); a later value of a name wins. A section named again in a later file keeps
  its first place (rcl keeps one entry per section name), which is how rcl merges them.
- ``-p name:=value`` goes into the ``/**`` section, ``-p node:name:=value`` into ``node``.
- Scalars are typed by rcl, not by YAML 1.1: ``1e-3`` and ``nan`` are numbers, ``y``/``n`` booleans,
  ``017`` octal and ``0x1F`` hexadecimal integers, ``~`` is text, quoted or ``!!str`` is text.
- A list mixing types (``[0.5, 0]``), an empty value or a name token other than letters,
  digits, ``_``, ``*`` and ``**`` is an error, as rcl refuses to start with it.
- So is an empty mapping as a parameter's value (``conf_threshold: {}``): rcl refuses the file
  where a key follows it and otherwise files the keys after it under wrong names or no value.
- On a command line, ``split_ros_args`` finds the ``--ros-args`` sections and their flags as
  rcl does, for every reader of ``--params-file`` and ``-p`` there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMETERS_KEY = "ros__parameters"
ALL_NODES = "/**"
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAG = "!plain"  # our marker for an unquoted, untagged scalar
_TRUE_WORDS = frozenset({"true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"})
_FALSE_WORDS = frozenset(
    {"false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF"}
)
# strtoll with base 0: hexadecimal, octal (leading 0) or decimal, optional sign.
_INTEGER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9_]+")
_INT64 = (-(2**63), 2**63 - 1)


class ParamsFileError(ValueError):
    """A params file or ``-p`` value rcl would refuse; the message names the file and line."""


class _Loader(yaml.BaseLoader):
    """Composes YAML without YAML 1.1 typing, marking plain scalars so rcl's typing can apply."""

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        """Plain scalars get our marker; quoted ones and explicit tags keep theirs."""
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN_TAG
        return super().resolve(kind, value, implicit)


def ros_scalar(text: str) -> bool | int | float | str:
    """An unquoted YAML scalar as rcl types it (bool, int64, double, else the text)."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    if _INTEGER.fullmatch(text):
        value = int(text, 16) if text.lstrip("+-")[:2].lower() == "0x" else _c_integer(text)
        if _INT64[0] <= value <= _INT64[1]:
            return value
        # strtoll overflowed: rcl tries strtod next, which reads it as a double.
    number = _c_double(text)
    return text if number is None else number


def _c_integer(text: str) -> int:
    digits = text.lstrip("+-")
    value = int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
    return -value if text.startswith("-") else value


def _c_double(text: str) -> float | None:
    """strtod over the whole text, or None where it leaves characters or over/underflows."""
    if text in (".inf", "+.inf", "-.inf", ".nan", ".Inf", "-.Inf", ".NaN", ".NAN", ".INF"):
        return float(text.replace(".", ""))
    if not text or "_" in text or text != text.strip():
        return None  # Python's float() accepts these, strtod does not
    try:
        value = float(text)
    except ValueError:
        if not re.match(r"[+-]?0[xX]", text):
            return None
        try:
            value = float.fromhex(text)  # strtod reads hexadecimal floats too
        except ValueError:
            return None
    lowered = text.lower()
    if math.isinf(value) and "inf" not in lowered:
        return None  # ERANGE: rcl keeps the text
    if value == 0.0 and re.search(r"[1-9]", lowered.split("e")[0].split("p")[0]):
        return None  # underflow, ERANGE as well
    return value


def ros_value(text: str) -> Any:
    """A ``-p name:=value`` value as rcl reads it: YAML, typed by rcl's rules."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ParamsFileError(f"{text!r} is not a YAML value: {_first_line(error)}") from None
    if node is None:
        raise ParamsFileError("an empty value is not a parameter value")
    return _value(node, f"value {text!r}")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """PyYAML's error as one line, ``line L, column C: problem (context, line N)``.

    PyYAML's own text spans lines and names ``"<unicode string>"`` with a caret under a copy of
    the line, which reads badly in a log or a CLI error.
    """
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        message = f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
        if error.context:
            started = error.context_mark
            since = f", line {started.line + 1}" if started is not None else ""
            message += f" ({error.context}{since})"
        return message
    if isinstance(error, yaml.reader.ReaderError):
        # A character YAML does not allow; PyYAML gives its offset in the text only.
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        return f"line {line}, column {column}: {_first_line(error)}"
    return _first_line(error)


def _where(node: yaml.Node, source: str) -> str:
    return f"{source}, line {node.start_mark.line + 1}"


def _value(node: yaml.Node, source: str) -> Any:
    if isinstance(node, yaml.ScalarNode):
        quoted = node.style in ("'", '"')
        if quoted or node.tag == _STR_TAG:
            return node.value  # rcl honours quotes and !!str, and ignores other tags
        if node.value == "":
            raise ParamsFileError(f"{_where(node, source)}: no value")
        return ros_scalar(node.value)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                raise ParamsFileError(
                    f"{_where(item, source)}: a list of lists or mappings is not a parameter"
                )
            items.append(_value(item, source))
        kinds = {_kind(item) for item in items}
        if len(kinds) > 1:
            raise ParamsFileError(
                f"{_where(node, source)}: the list mixes {' and '.join(sorted(kinds))} values, "
                "which rcl refuses (write 0.0, not 0, among doubles)"
            )
        return items or None  # rcl gives an empty list no value at all
    # A mapping, empty ones included: rcl refuses `-p name:={}` ("Unknown YAML event").
    raise ParamsFileError(f"{_where(node, source)}: expected a value")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "double"}.get(type(value), "string")


def section_matches(section: str, node_fqn: str) -> bool:
    """Whether params-file section ``section`` applies to the node named ``node_fqn``."""
    pattern = ""
    for token in section.strip("/").split("/"):
        if token == "**":
            pattern += r"(?:/[^/]+)*"
        elif token == "*":
            pattern += r"/[^/]+"
        else:
            pattern += "/" + re.escape(token)
    return re.fullmatch(pattern, node_fqn) is not None


@dataclass
class ParameterSections:
    """Params-file sections in rcl's order, each the parameters it sets; merge with ``for_node``."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_file(self, path: Path | str) -> None:
        """Add one params file's sections (ParamsFileError when unreadable or refused by rcl)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ParamsFileError(f"cannot read params file {path}: {error}") from error
        self.add_text(text, f"params file {path}")

    def add_text(self, text: str, source: str) -> None:
        """Add the sections of params-file text; ``source`` names it in error messages."""
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as error:
            raise ParamsFileError(
                f"{source} is not valid YAML: {_yaml_problem(error, text)}"
            ) from None
        if root is None:
            return  # rcl accepts an empty file
        if not isinstance(root, yaml.MappingNode):
            raise ParamsFileError(f"{source}: expected a mapping of node names to {PARAMETERS_KEY}")
        self._add_node_level(root, "", source)

    def set(self, name: str, value: Any, section: str = ALL_NODES) -> None:
        """One ``-p [node:]name:=value``: rcl files it under ``/**`` or the node's name."""
        self.sections.setdefault(section, {})[name] = value

    def for_node(self, node_fqn: str) -> dict[str, Any]:
        """The parameters a node named ``node_fqn`` (``/ns/name``) gets, merged as rcl does."""
        merged: dict[str, Any] = {}
        for section, values in self.sections.items():
            if section_matches(section, node_fqn):
                merged.update(values)
        return merged

    def matching_sections(self, node_fqn: str) -> list[str]:
        """The sections that apply to ``node_fqn``."""
        return [section for section in self.sections if section_matches(section, node_fqn)]

    def _add_node_level(self, mapping: yaml.MappingNode, prefix: str, source: str) -> None:
        for key_node, value_node in mapping.value:
            key = str(key_node.value)
            if key == PARAMETERS_KEY:
                if not prefix:
                    raise ParamsFileError(
                        f"{_where(key_node, source)}: {PARAMETERS_KEY} needs a node name above it"
                    )
                if not isinstance(value_node, yaml.MappingNode):
                    raise ParamsFileError(
                        f"{_where(value_node, source)}: {PARAMETERS_KEY} of {prefix!r} must be a "
                        "mapping of parameter names to values"
                    )
                values = self.sections.setdefault(prefix, {})
                self._add_parameters(value_node, "", values, source)
                continue
            _check_node_name(key, key_node, source)
            if not isinstance(value_node, yaml.MappingNode):
                raise ParamsFileError(
                    f"{_where(value_node, source)}: {key!r} must hold {PARAMETERS_KEY} or node "
                    "names below it"
                )
            name = key if not prefix else prefix + ("" if prefix.endswith("/") else "/") + key
            self._add_node_level(value_node, name, source)

    def _add_parameters(
        self, mapping: yaml.MappingNode, prefix: str, values: dict[str, Any], source: str
    ) -> None:
        for key_node, value_node in mapping.value:
            name = f"{prefix}{key_node.value}"
            if isinstance(value_node, yaml.MappingNode) and not value_node.value:
                # rcl refuses the file ("Cannot have a value before ros__parameters") when a key
                # follows; when none does, it gives the name no value or files later keys wrongly.
                raise ParamsFileError(
                    f"{_where(key_node, source)}: {name!r} is an empty mapping {{}}, which rcl "
                    "refuses or misreads: give it a value, or nested names under it"
                )
            if isinstance(value_node, yaml.MappingNode):
                self._add_parameters(value_node, f"{name}.", values, source)
            else:
                values[name] = _value(value_node, source)


def _check_node_name(key: str, node: yaml.Node, source: str) -> None:
    for token in key.strip("/").split("/"):
        if token not in ("*", "**") and not _NAME_TOKEN.fullmatch(token):
            raise ParamsFileError(
                f"{_where(node, source)}: section {key!r} is not a node name (letters, digits "
                "and _ between slashes, or the wildcards * and **)"
            )


def read_sections(paths: Iterable[Path | str]) -> ParameterSections:
    """The sections of ``paths``, in the order given (later files win where both apply)."""
    sections = ParameterSections()
    for path in paths:
        sections.add_file(path)
    return sections


def node_parameters(paths: Iterable[Path | str], node_fqn: str) -> dict[str, Any]:
    """What a node named ``node_fqn`` gets from ``paths`` given as ``--params-file`` in order."""
    return read_sections(paths).for_node(node_fqn)


# rcl's command-line words (rcl/arguments.h). A section of ROS arguments runs from
# ``--ros-args`` to ``--`` or the end of the command line; there may be several.
ROS_ARGS_FLAG = "--ros-args"
ROS_ARGS_END = "--"
PARAM_FLAGS = ("-p", "--param")
PARAMS_FILE_FLAG = "--params-file"
# Flags that take the next word as their value, whatever it looks like (rcl does not check
# it for a leading dash: `--log-file-name --` names a log file `--`, it ends nothing).
_VALUE_FLAGS = frozenset(
    {
        *PARAM_FLAGS,
        PARAMS_FILE_FLAG,
        "-r",
        "--remap",
        "-e",
        "--enclave",
        "--log-level",
        "--log-file-name",
        "--log-config-file",
    }
)


def split_ros_args(argv: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``argv`` split as rcl splits it: (ROS options in order, the program's other words).

    Each ROS option is ``(flag, value)``; the value of a switch such as
    ``--disable-rosout-logs`` is ``''``, as is that of a word rcl does not know (rcl refuses to
    start with one, and so with a value flag that ends the command line, which is left out).
    The other words are what rclpy's ``remove_ros_args`` leaves the program, ``argv[0]`` first.
    """
    options: list[tuple[str, str]] = []
    others: list[str] = []
    in_ros_args = False
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if not in_ros_args:
            if word == ROS_ARGS_FLAG:
                in_ros_args = True
            else:
                others.append(word)
        elif word == ROS_ARGS_END:
            in_ros_args = False
        elif word == ROS_ARGS_FLAG:
            continue  # a repeated --ros-args inside a section changes nothing
        elif word in _VALUE_FLAGS:
            if index < len(argv):
                options.append((word, argv[index]))
                index += 1
        else:
            options.append((word, ""))
    return options, others


def ros_args_options(argv: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(flag, value)`` options inside the ``--ros-args`` sections of ``argv``, in order.

    See :func:`split_ros_args`; e.g. ``[("--params-file", "a.yaml"), ("-p", "x:=1")]``.
    """
    return split_ros_args(argv)[0]


def enclave_name(argv: Sequence[str]) -> str | None:
    """The SROS2 enclave ``--enclave``/``-e`` gives inside ``--ros-args`` of ``argv`` (the last
    one, as rcl keeps), or None."""
    names = [value for flag, value in ros_args_options(argv) if flag in ("-e", "--enclave")]
    return names[-1] if names else None


def params_file_paths(argv: Sequence[str]) -> list[Path]:
    """The ``--params-file`` paths inside ``--ros-args`` of ``argv``, in order."""
    return [Path(value) for flag, value in ros_args_options(argv) if flag == PARAMS_FILE_FLAG]


class _QuotingDumper(yaml.SafeDumper):
    """Writes every string quoted: rcl reads an unquoted 1e-3, nan or y as a number or boolean."""


def _quoted_string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(_STR_TAG, text, style='"')


_QuotingDumper.add_representer(str, _quoted_string)


def dump_params_file(sections: dict[str, dict[str, Any]]) -> str:
    """Params-file text giving each section (node name) its parameters, strings kept strings."""
    document = {section: {PARAMETERS_KEY: dict(values)} for section, values in sections.items()}
    return yaml.dump(document, Dumper=_QuotingDumper, sort_keys=False)
