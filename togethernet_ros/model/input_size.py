"""Validation of network input sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# AvgPool(4) inside the SC blocks runs on the stride-32 map, so both sides must divide 32 * 4.
INPUT_SIZE_MULTIPLE = 128


def check_input_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalise ``size`` to ``(height, width)``; ValueError unless both are multiples of 128."""
    if isinstance(size, bool):
        raise ValueError(f"input size must be an int or (height, width), got {size!r}")
    if isinstance(size, int):
        height = width = size
    else:
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"input size must be an int or a (height, width) pair, got {size!r}"
            ) from None
    if height <= 0 or width <= 0 or height % INPUT_SIZE_MULTIPLE or width % INPUT_SIZE_MULTIPLE:
        raise ValueError(
            f"input size {height}x{width} (HxW) is not supported: TogetherNet needs positive "
            f"multiples of {INPUT_SIZE_MULTIPLE} (e.g. 640x640 or 384x640), because the "
            f"self-calibration blocks average-pool the stride-32 map by 4"
        )
    return height, width


def recorded_input_size(metadata: Mapping[str, Any]) -> tuple[int, int] | None:
    """The input size a checkpoint was trained at, as our trainer and distiller record it.

    None when the checkpoint says nothing (upstream ones) or records a size TogetherNet cannot
    run at, so callers fall back to their own default instead of failing on metadata.
    """
    size = metadata.get("input_size")
    if size is None:
        return None
    try:
        return check_input_size(size)
    except ValueError:
        return None
