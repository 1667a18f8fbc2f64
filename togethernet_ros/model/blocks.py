"""YOLOX building blocks: BaseConv, Focus, Bottleneck, CSPLayer and SPP bottleneck."""

from __future__ import annotations

import torch
from torch import nn


class BaseConv(nn.Module):
    """Conv (no bias) -> BatchNorm -> SiLU, 'same' padding for odd kernels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, norm and activation."""
        return self.act(self.bn(self.conv(x)))


class Focus(nn.Module):
    """Space-to-depth stem followed by a BaseConv.

    Patch order is top-left, bottom-left, top-right, bottom-right (YOLOX's order; changing it
    silently breaks pretrained weights).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, **bn) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, kernel_size, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fold each 2x2 pixel block into channels, then convolve."""
        top_left = x[:, :, ::2, ::2]
        bottom_left = x[:, :, 1::2, ::2]
        top_right = x[:, :, ::2, 1::2]
        bottom_right = x[:, :, 1::2, 1::2]
        return self.conv(torch.cat((top_left, bottom_left, top_right, bottom_right), dim=1))


class Bottleneck(nn.Module):
    """1x1 BaseConv -> 3x3 BaseConv, with a residual add when enabled and shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, **bn) -> None:
        super().__init__()
        self.conv1 = BaseConv(in_channels, out_channels, 1, **bn)
        self.conv2 = BaseConv(out_channels, out_channels, 3, **bn)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck transform plus optional identity."""
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: conv3(cat(m(conv1(x)), conv2(x))), hidden width = out / 2.

    ``m`` may be replaced by a subclass (C3TR puts a transformer there).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        shortcut: bool = True,
        **bn,
    ) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, **bn)
        self.conv2 = BaseConv(in_channels, hidden, 1, **bn)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, **bn)
        self.m: nn.Module = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, **bn) for _ in range(num_blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split into a processed and a bypass branch, concatenate, fuse."""
        processed = self.m(self.conv1(x))
        bypass = self.conv2(x)
        return self.conv3(torch.cat((processed, bypass), dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: concat(x, maxpool_k(x) for k in kernel_sizes) between 1x1 convs."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: tuple[int, ...] = (5, 9, 13),
        **bn,
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, **bn)
        self.m = nn.ModuleList(
            nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes
        )
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool at several receptive fields and fuse."""
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], dim=1))
