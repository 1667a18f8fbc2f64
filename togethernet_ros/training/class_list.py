"""The class list a user gives on the command line: a comma list or a file of names."""

from __future__ import annotations

from pathlib import Path

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES


def parse_class_names(value: str | None) -> tuple[str, ...]:
    """Class list from a comma-separated string or a file with one name per line."""
    if not value:
        return DEFAULT_CLASS_NAMES
    path = Path(value)
    if path.is_file():
        try:
            # One name per line: "traffic light" is one class, not two; a BOM is not a letter.
            names = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as error:
            raise ValueError(
                f"class names file {path} is not UTF-8 text ({error.reason})"
            ) from error
    else:
        names = value.split(",")
    names = tuple(name.strip() for name in names if name.strip())
    if not names:
        raise ValueError(f"no class names in {value!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate class names {duplicates} in {value!r}")
    return names
