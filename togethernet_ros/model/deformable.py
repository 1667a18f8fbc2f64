"""Modulated deformable 3x3 convolution (DCNv2) with the published parameterisation.

Function computed (the published ``DeformConv2D(modulation=True)``): for output pixel (i, j) and
kernel point n = (r, c) in row-major order,

    out[o, i, j] = sum_{ch, n} W[o, ch, r, c] * m[n, i, j] * bilinear(x[ch], i + r - 1 + dy[n, i, j],
                                                                   j + c - 1 + dx[n, i, j])

with ``offset = p_conv(x)`` laid out as [k*k row offsets dy | k*k column offsets dx] (NOT the
interleaved (dy, dx) pairs of torchvision), ``m = sigmoid(m_conv(x))`` and bilinear sampling that
reads zeros outside the image. The main ``conv`` holds ``W`` and has no bias.

Two evaluation strategies compute the same function:

* ``"fast"`` - one ``F.grid_sample`` for all kernel points plus one matmul. Exports to ONNX
  (GridSample, opset >= 16) and avoids the published index arithmetic.
* ``"gather"`` - the published strategy: zero-pad, clamp corner indices, four ``torch.gather``
  calls, rearrange to a (k*H, k*W) mosaic and run ``conv`` with stride k. Kept as the naive
  benchmark baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFORM_IMPLS = ("fast", "gather")


def _kernel_point_offsets(kernel_size: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column displacement of each kernel point from the centre, row-major."""
    half = (kernel_size - 1) // 2
    steps = torch.arange(-half, kernel_size - half, device=device, dtype=dtype)
    rows = steps.repeat_interleave(kernel_size)
    cols = steps.repeat(kernel_size)
    return rows, cols


class DeformConv2d(nn.Module):
    """Modulated deformable convolution, stride 1, 'same' output size.

    Attribute names (``conv``, ``p_conv``, ``m_conv``) are the upstream state_dict keys.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, impl: str = "fast"
    ) -> None:
        super().__init__()
        if impl not in DEFORM_IMPLS:
            raise ValueError(f"deform impl must be one of {DEFORM_IMPLS}, got {impl!r}")
        self.kernel_size = kernel_size
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
        if self.impl == "fast":
            return self._forward_grid_sample(x, offset, mask)
        return self._forward_gather(x, offset, mask)

    def _sample_positions(self, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Absolute sampling rows/columns (N, k*k, H, W) in unpadded pixel coordinates."""
        points = self.kernel_size * self.kernel_size
        _, _, height, width = offset.shape
        kernel_rows, kernel_cols = _kernel_point_offsets(
            self.kernel_size, offset.device, offset.dtype
        )
        grid_rows = torch.arange(height, device=offset.device, dtype=offset.dtype)
        grid_cols = torch.arange(width, device=offset.device, dtype=offset.dtype)
        base_rows = kernel_rows.view(1, points, 1, 1) + grid_rows.view(1, 1, height, 1)
        base_cols = kernel_cols.view(1, points, 1, 1) + grid_cols.view(1, 1, 1, width)
        return base_rows + offset[:, :points], base_cols + offset[:, points:]

    def _forward_grid_sample(
        self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        batch, channels, height, width = x.shape
        points = self.kernel_size * self.kernel_size
        rows, cols = self._sample_positions(offset)
        # align_corners=False maps pixel p to (2p + 1) / size - 1; zeros padding = zero outside.
        grid = torch.stack(((2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1), dim=-1)
        sampled = F.grid_sample(
            x,
            grid.reshape(batch, points * height, width, 2),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        modulated = sampled.reshape(batch, channels, points, height, width) * mask.unsqueeze(1)
        weight = self.conv.weight.reshape(self.conv.out_channels, channels * points)
        out = torch.matmul(weight, modulated.reshape(batch, channels * points, height * width))
        return out.reshape(batch, self.conv.out_channels, height, width)

    def _forward_gather(
        self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        batch, channels, height, width = x.shape
        points = self.kernel_size * self.kernel_size
        pad = (self.kernel_size - 1) // 2
        padded = F.pad(x, (pad, pad, pad, pad))
        padded_h, padded_w = height + 2 * pad, width + 2 * pad
        rows, cols = self._sample_positions(offset)
        rows, cols = rows + pad, cols + pad  # padded coordinates

        top = rows.detach().floor()
        left = cols.detach().floor()
        # Clamping the corners and the position onto the zero border reproduces zero padding:
        # any sample that leaves the padded frame lands on border zeros.
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
        # Mosaic: pixel (i, j) becomes a k x k tile holding its k*k samples; a stride-k conv
        # then applies W to every tile.
        k = self.kernel_size
        mosaic = sampled.reshape(batch, channels, k, k, height, width)
        mosaic = mosaic.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, height * k, width * k)
        return self.conv(mosaic)
