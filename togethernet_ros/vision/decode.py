"""Decode raw YOLOX head maps into per-anchor boxes and probabilities (upstream convention)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch


@cache
def _anchor_grid(
    sizes: tuple[tuple[int, int], ...], strides: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached: the grid only depends on the map sizes, and rebuilding it costs more than decoding.
    # Never evicted: CUDA graphs (inference/device_pipeline.py) read it by address, so a freed
    # and reused grid would corrupt their decode silently. One small grid per input size.
    cells, cell_strides = [], []
    for (height, width), stride in zip(sizes, strides, strict=True):
        rows, cols = torch.meshgrid(
            torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
        )
        cells.append(torch.stack((cols, rows), dim=-1).reshape(-1, 2))
        cell_strides.append(torch.full((height * width, 1), float(stride), device=device))
    return torch.cat(cells).float(), torch.cat(cell_strides)


def decode_outputs(
    maps: Sequence[torch.Tensor | np.ndarray],
    strides: Sequence[int] = (8, 16, 32),
    input_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Raw head maps (N x (5+C) x h x w per stride) -> N x A x (5+C) float32.

    Columns: [cx, cy, w, h] in input pixels (centre = (t_xy + grid) * stride, size =
    exp(t_wh) * stride), then sigmoid(obj) and sigmoid(cls...). Anchors are ordered by stride,
    row-major within a map, like upstream. `input_size` (h, w), when given, is checked against
    the map sizes.
    """
    if len(maps) != len(strides):
        raise ValueError(f"got {len(maps)} head maps but {len(strides)} strides")
    tensors = [torch.as_tensor(m) for m in maps]
    sizes = tuple((int(t.shape[-2]), int(t.shape[-1])) for t in tensors)
    if input_size is not None:
        expected = tuple((input_size[0] // s, input_size[1] // s) for s in strides)
        if sizes != expected:
            raise ValueError(
                f"head map sizes {sizes} do not match input size {tuple(input_size)} "
                f"with strides {tuple(strides)} (expected {expected})"
            )
    channels = {int(t.shape[1]) for t in tensors}
    if len(channels) != 1 or min(channels) < 6:
        raise ValueError(f"head maps must share one channel count >= 6, got {sorted(channels)}")
    flat = torch.cat([t.float().flatten(start_dim=2) for t in tensors], dim=2).permute(0, 2, 1)
    cells, cell_strides = _anchor_grid(sizes, tuple(int(s) for s in strides), flat.device)
    centres = (flat[..., :2] + cells) * cell_strides
    extents = torch.exp(flat[..., 2:4]) * cell_strides
    return torch.cat((centres, extents, torch.sigmoid(flat[..., 4:])), dim=-1)
