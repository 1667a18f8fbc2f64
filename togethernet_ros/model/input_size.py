"""Validation of network input sizes."""

from __future__ import annotations

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
