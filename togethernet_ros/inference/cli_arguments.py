"""Command-line options shared by `togethernet predict`, `export` and `bench`."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path


def parse_input_size(text: str) -> tuple[int, int]:
    """'640' -> (640, 640); '384x640' (HxW) -> (384, 640); multiples of 128 only."""
    from togethernet_ros.model import check_input_size

    try:
        parts = [int(part) for part in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"input size must look like 640 or 384x640 (HxW), got {text!r}"
        ) from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"input size must look like 640 or 384x640, got {text!r}")
    try:
        return check_input_size(parts[0] if len(parts) == 1 else (parts[0], parts[1]))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_unit_interval(text: str) -> float:
    """A float in [0, 1] (score and IoU thresholds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def parse_iou_threshold(text: str) -> float:
    """An IoU match threshold in (0, 1]: 0 would count any overlap at all as a match."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def parse_seconds(text: str) -> float:
    """A duration in seconds, > 0 (time-outs)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def parse_positive_number(text: str) -> float:
    """A finite number > 0 (rates)."""
    return _finite_at_least(text, 0.0, inclusive=False)


def parse_non_negative_number(text: str) -> float:
    """A finite number >= 0 (densities, margins)."""
    return _finite_at_least(text, 0.0, inclusive=True)


def _finite_at_least(text: str, minimum: float, inclusive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    low_enough = value < minimum if inclusive else value <= minimum
    if not math.isfinite(value) or low_enough:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
    return value


def parse_positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, frames)."""
    return _int_at_least(text, 1)


def parse_max_detections(text: str) -> int | None:
    """A per-image detection cap: an integer >= 1, or 'none' for no cap.

    0 is refused, not read as "no cap": it reads just as well as "no detections".
    """
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 or 'none' (no cap), got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'none' (no cap), got {value}")
    return value


def parse_non_negative_int(text: str) -> int:
    """An integer >= 0 (warm-up calls)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def check_output_file(path: str | Path, option: str) -> None:
    """Raise ValueError when a file could not be written at ``path`` (checked before long work).

    A folder at the path, a file where a parent folder must be, or a folder nobody may write
    in would otherwise only fail at the end, naming a temporary file instead of the option.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name")
    check_parent_writable(target, f"{option} {path}")


def check_output_folder(path: str | Path, option: str) -> None:
    """Raise ValueError when ``path`` cannot be (or be created as) a folder to write in."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{option} {path} is a file; give a folder")
    check_parent_writable(target / "_", f"{option} {path}")


def check_parent_writable(target: str | Path, named: str) -> None:
    """Raise ValueError unless the nearest existing folder above ``target`` takes new files.

    Folders missing in between are left for the command to create. ``named`` is the option
    and path as the user gave them, for the message.
    """
    for parent in Path(target).absolute().parents:
        if not parent.exists():
            continue  # created by the command, inside the nearest existing one
        if not parent.is_dir():
            raise ValueError(f"{named}: {parent} is a file, not a folder")
        # A real write, not os.access: root passes every permission check, yet cannot write
        # in /proc or on a read-only mount.
        try:
            descriptor, probe = tempfile.mkstemp(prefix=".togethernet-write-check-", dir=parent)
        except OSError as error:
            raise ValueError(
                f"{named}: cannot write in {parent} ({error.strerror or error})"
            ) from None
        os.close(descriptor)
        os.unlink(probe)
        return


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights and --allow-untrained."""
    parser.add_argument(
        "--weights",
        default=None,
        help="checkpoint (.pth/.pt: ours or upstream TogetherNet train.py)",
    )
    parser.add_argument(
        "--allow-untrained",
        action="store_true",
        help="run with random weights when --weights is missing (outputs are meaningless)",
    )


def add_backend_arguments(parser: argparse.ArgumentParser, default_device: str = "cpu") -> None:
    """--backend, --device, --precision, --onnx, --cache-dir, --threads.

    ``default_device`` "auto" (a GPU when torch sees one) suits commands that just want
    results; measuring or exporting commands keep "cpu", so a run means the same everywhere.
    """
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    auto_help = "a CUDA GPU when torch sees one, else the CPU"
    parser.add_argument(
        "--device",
        default=default_device,
        help=f"auto ({auto_help}), cpu or cuda[:N] (default: {default_device})",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16"),
        default="auto",
        help="auto (default): fp16 on a GPU, fp32 on the CPU",
    )
    parser.add_argument(
        "--onnx", default=None, help="ONNX file for --backend onnxruntime (exported if missing)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="ONNX exports and TensorRT engines (default $XDG_CACHE_HOME/togethernet_ros, "
        "else ~/.cache/togethernet_ros)",
    )
    parser.add_argument(
        "--threads",
        type=parse_positive_int,
        default=None,
        help="CPU threads (torch and onnxruntime; default: all)",
    )
