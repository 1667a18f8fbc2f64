"""Batch pre-processing: letterbox, colour order to RGB, /255 and ImageNet mean/std.

Normalisation goes through a 256-entry lookup table per channel built with upstream's exact
arithmetic (float32 /255, then float64 mean/std stored back to float32), so inputs are
bit-identical to upstream's `preprocess_input` and the gather is cheaper than the arithmetic.
Runs on CPU or, for on-device pre-processing, on CUDA (only uint8 pixels are uploaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch

try:  # OpenCV is optional: on-device pre-processing and minimal GPU images work without it.
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is absent
    cv2 = None

from togethernet_ros.vision.letterbox import (
    PAD_VALUE,
    LetterboxInfo,
    image_to_tensor,
    letterbox_into,
    normalize_size,
    validate_image,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLOR_ORDERS = ("bgr", "rgb")


def check_color_order(color_order: str) -> str:
    """Return the lower-cased colour order, or raise ValueError if it is not bgr/rgb."""
    order = str(color_order).lower()
    if order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    return order


def rgb_source_channels(color_order: str) -> tuple[int, int, int]:
    """Input channel index feeding each RGB output channel."""
    return (2, 1, 0) if check_color_order(color_order) == "bgr" else (0, 1, 2)


def normalization_table() -> np.ndarray:
    """(3, 256) float32: normalised value of every uint8 level for the R, G, B channels."""
    levels = np.arange(256, dtype=np.float32)[:, None].repeat(3, axis=1)
    # In-place ops with float64 operands reproduce upstream's rounding exactly.
    levels /= 255.0
    levels -= np.array(IMAGENET_MEAN)
    levels /= np.array(IMAGENET_STD)
    return np.ascontiguousarray(levels.T)


def normalize_canvas(canvas: torch.Tensor, color_order: str) -> torch.Tensor:
    """Nx3xHxW uint8 letterboxed canvas (input colour order) -> float32 RGB normalised NCHW."""
    source = list(rgb_source_channels(color_order))
    if canvas.device.type == "cpu" and cv2 is not None:
        return _normalize_canvas_cv2(canvas, source)
    table, channel_offsets = _device_table(canvas.device)
    # flip, not canvas[:, source]: indexing with a Python list uploads the list from pageable
    # host memory, which is not allowed while a CUDA graph is being captured.
    rgb = canvas.flip(1) if source[0] == 2 else canvas
    index = rgb.to(torch.int64, memory_format=torch.contiguous_format)
    index += channel_offsets
    return table.take(index)


@cache
def _device_table(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached per device: uploading the table on every call costs a host-device sync per batch.
    # Never evicted: CUDA graphs read it by address (see `_anchor_grid` in vision/decode.py).
    table = torch.from_numpy(normalization_table()).to(device).reshape(-1)
    channel_offsets = (torch.arange(3, device=device) * 256).view(1, 3, 1, 1)
    return table, channel_offsets


def _normalize_canvas_cv2(canvas: torch.Tensor, source: list[int]) -> torch.Tensor:
    # cv2.LUT with a float table is ~3x faster than torch's gather on CPU.
    table = normalization_table()
    batch, _, height, width = canvas.shape
    output = np.empty((batch, 3, height, width), dtype=np.float32)
    pixels = canvas.permute(0, 2, 3, 1).numpy()
    for index in range(batch):
        channels = cv2.split(pixels[index])
        for channel, source_channel in enumerate(source):
            cv2.LUT(channels[source_channel], table[channel], dst=output[index, channel])
    return torch.from_numpy(output)


def preprocess_batch(
    images: Sequence[np.ndarray],
    input_size: int | tuple[int, int],
    color_order: str = "bgr",
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[LetterboxInfo]]:
    """Letterbox and normalise a batch of HxWx3 uint8 images of any sizes.

    Returns an Nx3xHxW float32 RGB tensor on `device` (ready for the model) and one
    LetterboxInfo per image for mapping results back to source pixels.
    """
    check_color_order(color_order)
    if len(images) == 0:
        raise ValueError("images must contain at least one image")
    input_h, input_w = normalize_size(input_size)
    device = torch.device(device)
    canvas = torch.empty(
        (len(images), 3, input_h, input_w),
        dtype=torch.uint8,
        device=device,
        memory_format=torch.channels_last,
    ).fill_(PAD_VALUE)
    infos = []
    for index, image in enumerate(images):
        validate_image(image, name=f"images[{index}]")
        info = LetterboxInfo.compute(image.shape[:2], (input_h, input_w))
        letterbox_into(canvas[index], image_to_tensor(image, device), info)
        infos.append(info)
    return normalize_canvas(canvas, color_order), infos
