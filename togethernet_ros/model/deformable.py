"""Modulated deformable 3x3 convolution (DCNv2) with the published parameterisation.

Function computed (the published ``DeformConv2D(modulation=True)``): for output pixel (i, j) and
kernel point n = (r, c) in row-major order, with h = (k - 1) // 2,

    out[o, i, j] = sum_{ch, n} W[o, ch, r, c] * m[n, i, j]
                   * bilinear(x[ch], i + r - h + dy[n, i, j], j + c - h + dx[n, i, j])

with ``offset = p_conv(x)`` laid out as [k*k row offsets dy | k*k column offsets dx] (NOT the
interleaved (dy, dx) pairs of torchvision), ``m = sigmoid(m_conv(x))`` and bilinear sampling
that reads zeros outside the image. The main ``conv`` holds ``W`` and has no bias.

Two evaluation strategies compute the same function:

* :func:`deform_conv_grid_sample` - one ``F.grid_sample`` for all kernel points plus one matmul.
  Exports to ONNX (GridSample, opset >= 16) and needs no index arithmetic.
* :func:`deform_conv_gather` - the published strategy: zero-pad, clamp corner indices, four
  ``torch.gather`` calls, a (k*H, k*W) mosaic and a stride-k conv. The naive baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFORM_IMPLS = ("fast", "gather")


def _sample_positions(offset: torch.Tensor, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute sampling rows and columns, each (N, k*k, H, W), in unpadded pixel units."""
    points = kernel_size * kernel_size
    _, _, height, width = offset.shape
    half = (kernel_size - 1) // 2
    steps = torch.arange(-half, kernel_size - half, device=offset.device, dtype=offset.dtype)
    kernel_rows = steps.repeat_interleave(kernel_size).view(1, points, 1, 1)
    kernel_cols = steps.repeat(kernel_size).view(1, points, 1, 1)
    grid_rows = torch.arange(height, device=offset.device, dtype=offset.dtype).view(1, 1, -1, 1)
    grid_cols = torch.arange(width, device=offset.device, dtype=offset.dtype).view(1, 1, 1, -1)
    rows = kernel_rows + grid_rows + offset[:, :points]
    cols = kernel_cols + grid_cols + offset[:, points:]
    return rows, cols


def deform_conv_grid_sample(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Modulated deformable conv via ``grid_sample`` + matmul.

    x (N, C, H, W); offset (N, 2*k*k, H, W) as [rows | cols]; mask (N, k*k, H, W);
    weight (O, C, k, k). Returns (N, O, H, W).
    """
    batch, channels, height, width = x.shape
    out_channels, _, kernel_size, _ = weight.shape
    points = kernel_size * kernel_size
    # Positions in at least fp32: fp16 cannot resolve fractions of a pixel at large coordinates.
    position_dtype = torch.promote_types(offset.dtype, torch.float32)
    rows, cols = _sample_positions(offset.to(position_dtype), kernel_size)
    # align_corners=False maps pixel p to (2p + 1) / size - 1; padding "zeros" = zero outside.
    grid = torch.stack(((2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1), dim=-1)
    sampled = F.grid_sample(
        x,
        grid.reshape(batch, points * height, width, 2).to(x.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    modulated = sampled.reshape(batch, channels, points, height, width) * mask.unsqueeze(1)
    out = torch.matmul(
        weight.reshape(out_channels, channels * points),
        modulated.reshape(batch, channels * points, height * width),
    )
    return out.reshape(batch, out_channels, height, width)


def deform_conv_gather(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Modulated deformable conv the way the published code evaluates it (same arguments)."""
    batch, channels, height, width = x.shape
    kernel_size = weight.shape[-1]
    points = kernel_size * kernel_size
    pad = (kernel_size - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad))
    padded_h, padded_w = height + 2 * pad, width + 2 * pad
    rows, cols = _sample_positions(offset, kernel_size)
    rows, cols = rows + pad, cols + pad  # padded coordinates

    top = rows.detach().floor()
    left = cols.detach().floor()
    # Clamping corners and position onto the zero border reproduces zero padding: a sample
    # that leaves the padded frame only ever reads border zeros.
    top_c = top.clamp(0, padded_h - 1)
    bottom_c = (top + 1).clamp(0, padded_h - 1)
    left_c = left.clamp(0, padded_w - 1)
    right_c = (left + 1).clamp(0, padded_w - 1)
    rows = rows.clamp(0, padded_h - 1)
    cols = cols.clamp(0, padded_w - 1)
    w_top = 1 + (top_c - rows)
    w_bottom = 1 - (bottom_c - rows)
    w_left = 1 + (left_c - cols)
    w_right = 1 - (right_c - cols)

    flat = padded.reshape(batch, channels, padded_h * padded_w)

    def corner(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        index = (r * padded_w + c).long().reshape(batch, 1, -1).expand(-1, channels, -1)
        return torch.gather(flat, 2, index).reshape(batch, channels, points, height, width)

    sampled = (
        (w_top * w_left).unsqueeze(1) * corner(top_c, left_c)
        + (w_bottom * w_right).unsqueeze(1) * corner(bottom_c, right_c)
        + (w_top * w_right).unsqueeze(1) * corner(top_c, right_c)
        + (w_bottom * w_left).unsqueeze(1) * corner(bottom_c, left_c)
    )
    sampled = sampled * mask.unsqueeze(1)
    # Mosaic: pixel (i, j) becomes a k x k tile of its samples; a stride-k conv applies W per tile.
    mosaic = sampled.reshape(batch, channels, kernel_size, kernel_size, height, width)
    mosaic = mosaic.permute(0, 1, 4, 2, 5, 3).reshape(
        batch, channels, height * kernel_size, width * kernel_size
    )
    return F.conv2d(mosaic, weight, stride=kernel_size)


class DeformConv2d(nn.Module):
    """Modulated deformable convolution, stride 1, 'same' output size.

    Attribute names (``conv``, ``p_conv``, ``m_conv``) are the upstream state_dict keys; ``conv``
    is registered with stride k like upstream, though only its weight is used. Upstream's module
    also registers a backward hook (``_set_lr``) on the offset/mask convs, meant to scale their
    gradients by 0.1. In the common DCNv2 code it comes from, that hook builds generators and
    returns None, so it changes no gradient. Training here applies no scaling either, which
    reproduces what the hook actually does.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, impl: str = "fast"
    ) -> None:
        super().__init__()
        if impl not in DEFORM_IMPLS:
            raise ValueError(f"deform impl must be one of {DEFORM_IMPLS}, got {impl!r}")
        self.impl = impl
        points = kernel_size * kernel_size
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=kernel_size, bias=False
        )
        self.p_conv = nn.Conv2d(in_channels, 2 * points, 3, padding=1, bias=True)
        self.m_conv = nn.Conv2d(in_channels, points, 3, padding=1, bias=True)
        # Start as a plain convolution: zero offsets and a constant 0.5 modulation.
        for module in (self.p_conv, self.m_conv):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, out_channels, H, W)."""
        offset = self.p_conv(x)
        mask = torch.sigmoid(self.m_conv(x))
        sample = deform_conv_grid_sample if self.impl == "fast" else deform_conv_gather
        return sample(x, offset, mask, self.conv.weight)
