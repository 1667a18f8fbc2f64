"""The class list a user gives on the command line: a comma list or a file of names."""

from __future__ import annotations

from pathlib import Path

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES

_PATH_STARTS = ("/", "./", "../", "~")
_LIST_FILES = (".txt", ".names")


def parse_class_names(value: str | None) -> tuple[str, ...]:
    """Class list from a comma-separated string or a file with one name per line.

    A value that names no file but looks like a path (a single name starting "/", "./",
    "../" or "~", or ending .txt / .names) is refused as a missing file rather than read as
    a class name ("car/van" in a list is a class).
    """
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
    elif "," not in value and (value.startswith(_PATH_STARTS) or value.endswith(_LIST_FILES)):
        # Not a file, yet written as one: taken as one class name, it would drop every object
        # of the real classes as unknown without another word.
        problem = "is not a file" if path.exists() else "does not exist"
        raise ValueError(f"class names file {path} {problem}")
    else:
        names = value.split(",")
    names = tuple(name.strip() for name in names if name.strip())
    if not names:
        raise ValueError(f"no class names in {value!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate class names {duplicates} in {value!r}")
    return names
