"""Fuse the deformable convolution of the DTFE into fewer, larger kernels (inference only).

`DeformConv2d` spells its sampling grid out step by step (aranges, kernel offsets, adds,
normalisation, a stack): ~25 kernels per call, and the DTFE calls it twice. On a GPU at batch 1
every one of them is a launch of a few microseconds on a 20 x 20 map. `FusedDeformConv2d`
computes the same function with ~8:

- one 3 x 3 conv emits the offsets and the modulation logits together (the two published convs
  concatenated), with the offsets reordered to grid_sample's (x, y) order;
- the sampling grid is one `addcmul` of the offsets onto a normalised base grid that is built
  once per feature-map size;
- the matmul writes its output in the input's memory format (channels_last in the detector),
  so the next convolution needs no layout copy.

On CUDA the grid_sample also runs over channel groups: its kernel gives each output position
one thread that loops over every channel, so at batch 1 the 512-channel map of a 384 x 640 frame
got 2,160 threads of 512 sequential iterations each (a fraction of one warp per SM on an H100).
Groups of 16 channels give 32 x the threads at 16 iterations each; the arithmetic per channel is
unchanged, so the result is bit-identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from togethernet_ros.inference.module_replacement import replace_modules
from togethernet_ros.model.deformable import DeformConv2d

# Channels per grid_sample thread on CUDA (see the module docstring).
CUDA_CHANNELS_PER_THREAD = 16
# A cached base grid's feature-map height and width, device and dtype.
_GridKey = tuple[int, int, torch.device, torch.dtype]


class FusedDeformConv2d(nn.Module):
    """Inference form of a fast `DeformConv2d`: same function, same parameters, fewer kernels.

    `channels_per_thread` groups the channels of the sampling step (None: 16 on CUDA, no
    grouping on the CPU, whose kernel vectorises over positions instead). It must divide the
    channel count.
    """

    def __init__(self, deform: DeformConv2d, channels_per_thread: int | None = None) -> None:
        super().__init__()
        out_channels, in_channels, kernel_size, _ = deform.conv.weight.shape
        if channels_per_thread is not None and in_channels % channels_per_thread:
            raise ValueError(
                f"channels_per_thread={channels_per_thread} does not divide {in_channels} channels"
            )
        self.kernel_size = kernel_size
        self.points = kernel_size * kernel_size
        self.channels_per_thread = channels_per_thread
        points = self.points
        # Published layout [rows | cols]; grid_sample takes (x, y) = (col, row) pairs.
        xy_order = torch.cat((torch.arange(points, 2 * points), torch.arange(points)))
        source = deform.p_conv.weight
        offset_mask = nn.Conv2d(
            in_channels, 3 * points, 3, padding=1, device=source.device, dtype=source.dtype
        )
        with torch.no_grad():
            offset_mask.weight.copy_(
                torch.cat((deform.p_conv.weight[xy_order], deform.m_conv.weight))
            )
            offset_mask.bias.copy_(torch.cat((deform.p_conv.bias[xy_order], deform.m_conv.bias)))
        self.offset_mask = offset_mask.requires_grad_(False)
        # (O, C * k * k): column c * k * k + n multiplies channel c sampled at kernel point n.
        self.register_buffer(
            "weight", deform.conv.weight.detach().reshape(out_channels, -1).clone()
        )
        # Normalised base grid and pixel-to-grid scale per feature-map size, built on first use
        # (outside any CUDA graph capture: the detector warms up first). Kept for every size
        # seen: a captured graph reads its grid at a fixed address, so none may be freed.
        self._grids: dict[_GridKey, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, O, H, W), in x's memory format."""
        batch, channels, height, width = x.shape
        points = self.points
        offset_mask = self.offset_mask(x)
        # Positions in at least fp32: fp16 cannot resolve fractions of a pixel far from the
        # origin. They are rounded to x's dtype once, for grid_sample.
        position_dtype = torch.promote_types(x.dtype, torch.float32)
        if torch.compiler.is_compiling():
            # Traced: Inductor folds these constants into the grid's kernel, and a cache
            # mutated inside the trace would make Dynamo recompile on the next call.
            base, scale = _normalised_base_grid(
                self.kernel_size, height, width, x.device, position_dtype
            )
        else:
            base, scale = self._grid_constants(height, width, x.device, position_dtype)
        # (N, 2, k*k, H, W) -> (N, k*k, H, W, 2), added onto the base grid in one kernel.
        offsets = offset_mask[:, : 2 * points].unflatten(1, (2, points)).permute(0, 2, 3, 4, 1)
        grid = torch.addcmul(base, offsets, scale).to(x.dtype)
        mask = torch.sigmoid(offset_mask[:, 2 * points :])
        sampled = self._sample(x, grid.reshape(batch, points * height, width, 2))
        modulated = sampled.reshape(batch, channels, points, height, width) * mask.unsqueeze(1)
        columns = modulated.reshape(batch, channels * points, height * width)
        if x.is_contiguous(memory_format=torch.channels_last):
            # (N, H*W, O) is the channels_last layout of (N, O, H, W): no copy for the next conv.
            out = torch.matmul(columns.transpose(1, 2), self.weight.t())
            return out.view(batch, height, width, -1).permute(0, 3, 1, 2)
        return torch.matmul(self.weight, columns).view(batch, -1, height, width)

    def _sample(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Bilinear samples (N, C, k*k*H, W) of x at grid, zeros outside."""
        per_thread = self.channels_per_thread
        if per_thread is None:
            per_thread = CUDA_CHANNELS_PER_THREAD if x.is_cuda else x.shape[1]
        batch, channels = x.shape[:2]
        groups = channels // per_thread if channels % per_thread == 0 else 1
        if groups == 1:
            return F.grid_sample(
                x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        # Channel groups as extra batch items sharing one grid (a stride-0 view at batch 1).
        grouped = x.reshape(batch * groups, channels // groups, *x.shape[2:])
        shared_grid = grid.unsqueeze(1).expand(-1, groups, -1, -1, -1).flatten(0, 1)
        sampled = F.grid_sample(
            grouped, shared_grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return sampled.reshape(batch, channels, *sampled.shape[2:])

    def _grid_constants(
        self, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (height, width, device, dtype)
        grid = self._grids.get(key)
        if grid is None:
            grid = self._grids[key] = _normalised_base_grid(
                self.kernel_size, height, width, device, dtype
            )
        return grid


def _normalised_base_grid(
    kernel_size: int, height: int, width: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-offset grid (1, k*k, H, W, 2) in grid_sample units, and the pixel-to-unit scale.

    Kernel point n = (r, c) of output pixel (i, j) samples row i + r - h, column j + c - h;
    align_corners=False maps pixel p of a size-S axis to (2p + 1) / S - 1.
    """
    half = (kernel_size - 1) // 2
    steps = torch.arange(-half, kernel_size - half, device=device, dtype=torch.float64)
    kernel_rows = steps.repeat_interleave(kernel_size).view(-1, 1, 1)
    kernel_cols = steps.repeat(kernel_size).view(-1, 1, 1)
    rows = kernel_rows + torch.arange(height, device=device, dtype=torch.float64).view(1, -1, 1)
    cols = kernel_cols + torch.arange(width, device=device, dtype=torch.float64).view(1, 1, -1)
    shape = (kernel_size * kernel_size, height, width)
    base = torch.stack(
        (((2 * cols + 1) / width - 1).expand(shape), ((2 * rows + 1) / height - 1).expand(shape)),
        dim=-1,
    )
    scale = torch.tensor([2.0 / width, 2.0 / height], device=device, dtype=torch.float64)
    return base.unsqueeze(0).to(dtype), scale.to(dtype)


def fuse_deformable_convs(model: nn.Module, channels_per_thread: int | None = None) -> int:
    """Replace, in place, every fast `DeformConv2d` by a `FusedDeformConv2d`; returns the count.

    Modules built with the published gather strategy (`impl="gather"`, the naive baseline) are
    left alone. The model must be in eval mode: the fused module has no gradients.
    """
    fused = replace_modules(
        model,
        lambda module: isinstance(module, DeformConv2d) and module.impl == "fast",
        lambda module: FusedDeformConv2d(module, channels_per_thread),  # type: ignore[arg-type]
        "fuse_deformable_convs",
    )
    return len(fused)
