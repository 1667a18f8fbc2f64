"""TogetherNet restoration decoder: backbone features -> dehazed image (after Tanh)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from togethernet_ros.model.config import TogetherNetConfig

RESTORATION_IMPLS = ("fast", "published")


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 transposed conv (exact x2) + BatchNorm (torch default eps 1e-5) + SiLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(inplace=True),
    )


class RestorationDecoder(nn.Module):
    """U-Net style decoder tapping the backbone at strides 32, 16 and 8.

    Published tail: bilinear x4 (align_corners=True) -> ReflectionPad(3) -> 7x7 conv 64->3 ->
    Tanh, all at full resolution. That conv has only three output channels, which starves
    CPU conv kernels (it alone was 40 % of the published model's CPU time).

    ``impl="fast"`` evaluates the same linear map in a cheaper order. Bilinear resizing and
    reflection padding are separable (rows and columns independently) and act on every channel
    alike, so they commute with channel mixing and with the other axis. The tail becomes:
    resize + reflect-pad columns of the 64-channel map at stride-4 height, a 1x7 conv producing
    7 row taps per output channel (64 -> 21 channels, 4x fewer MACs), resize + reflect-pad those
    21 channels along rows, and a sum of the 7 row-shifted taps. Exact up to float rounding.
    ``impl="published"`` runs the literal published tail (benchmark baseline, tests).
    """

    def __init__(self, config: TogetherNetConfig, impl: str = "fast") -> None:
        super().__init__()
        if impl not in RESTORATION_IMPLS:
            raise ValueError(f"restoration impl must be one of {RESTORATION_IMPLS}, got {impl!r}")
        self.impl = impl
        c2, c3, c4, c5 = config.backbone_channels
        self.conv_1 = _up_block(c5, c4)
        self.conv_2 = _up_block(2 * c4, c3)
        self.conv_3 = _up_block(2 * c3, c2)
        self.upsample = nn.Upsample(
            scale_factor=config.decoder_upsample, mode="bilinear", align_corners=True
        )
        self.conv_4 = nn.Sequential(
            nn.ReflectionPad2d(config.decoder_kernel_size // 2),
            nn.Conv2d(c2, config.image_channels, config.decoder_kernel_size),
            nn.Tanh(),
        )
        self.scale = config.decoder_upsample

    def forward(
        self, stride32: torch.Tensor, stride16: torch.Tensor, stride8: torch.Tensor
    ) -> torch.Tensor:
        """(DTFE output, dark4, dark3) -> image in [-1, 1], (N, 3, 8*H8, 8*W8)."""
        x = self.conv_1(stride32)
        x = self.conv_2(torch.cat((x, stride16), dim=1))
        x = self.conv_3(torch.cat((x, stride8), dim=1))
        if self.impl == "fast":
            return self.fast_tail(x)
        return self.published_tail(x)

    def published_tail(self, x: torch.Tensor) -> torch.Tensor:
        """Stride-4 features (N, 64, h, w) -> image, literally as published."""
        return self.conv_4(self.upsample(x))

    def fast_tail(self, x: torch.Tensor) -> torch.Tensor:
        """Same map as :meth:`published_tail`, evaluated in the cheap order (class docstring)."""
        conv = self.conv_4[1]
        out_channels = conv.out_channels
        kernel = conv.kernel_size[0]
        pad = kernel // 2
        batch, channels, height, width = x.shape
        out_h, out_w = height * self.scale, width * self.scale

        # Columns: resize to full width (rows untouched: align_corners maps row i to i exactly).
        cols = F.interpolate(x, size=(height, out_w), mode="bilinear", align_corners=True)
        cols = F.pad(cols, (pad, pad, 0, 0), mode="reflect")
        # One 1 x k conv per kernel row dy: channel (o * k + dy) holds sum_{c, dx} W[o,c,dy,dx].
        row_weights = conv.weight.permute(0, 2, 1, 3).reshape(
            out_channels * kernel, channels, 1, kernel
        )
        taps = F.conv2d(cols, row_weights)
        # Rows: resize and reflect-pad the row taps, then add the k row-shifted copies.
        taps = F.interpolate(taps, size=(out_h, out_w), mode="bilinear", align_corners=True)
        taps = F.pad(taps, (0, 0, pad, pad), mode="reflect")
        taps = taps.reshape(batch, out_channels, kernel, out_h + 2 * pad, out_w)
        out = taps[:, :, 0, 0:out_h]
        for dy in range(1, kernel):
            out = out + taps[:, :, dy, dy : dy + out_h]
        return torch.tanh(out + conv.bias.view(1, out_channels, 1, 1))
