"""Self-calibrated convolution bottleneck (SCNet, Liu et al. 2020) used in TogetherNet's neck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SCConv(nn.Module):
    """Self-calibration: k4(k3(x) * sigmoid(x + up(k2(avgpool(x)))))."""

    def __init__(self, channels: int, pooling: int = 4, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.k2 = nn.Sequential(
            nn.AvgPool2d(kernel_size=pooling, stride=pooling),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.k3 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1))
        self.k4 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(negative_slope)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the 3x3 response by a low-resolution context of the input."""
        # Nearest resize back to the input size; exact x4 only when the side divides by 4,
        # which check_input_size guarantees.
        context = F.interpolate(self.k2(x), size=x.shape[-2:], mode="nearest")
        gate = torch.sigmoid(x + context)
        return self.k4(self.k3(x) * gate)


class SCBottleneck(nn.Module):
    """Two half-width branches (plain 3x3 and self-calibrated), 1x1 fuse, residual, LeakyReLU."""

    def __init__(self, channels: int, pooling: int = 4, negative_slope: float = 0.2) -> None:
        super().__init__()
        half = channels // 2
        self.conv1_a = nn.Conv2d(channels, half, 1)
        self.k1 = nn.Sequential(nn.Conv2d(half, half, 3, padding=1), nn.LeakyReLU(negative_slope))
        self.conv1_b = nn.Conv2d(channels, half, 1)
        self.scconv = SCConv(half, pooling, negative_slope)
        self.conv3 = nn.Conv2d(half * 2, channels, 1)
        self.relu = nn.LeakyReLU(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        plain = self.k1(self.relu(self.conv1_a(x)))
        calibrated = self.scconv(self.relu(self.conv1_b(x)))
        return self.relu(self.conv3(torch.cat((plain, calibrated), dim=1)) + x)
