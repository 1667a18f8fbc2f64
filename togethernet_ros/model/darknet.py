"""CSPDarknet backbone with TogetherNet's Dynamic Transformer Feature Enhancement (DTFE)."""

from __future__ import annotations

import torch
from torch import nn

from togethernet_ros.model.blocks import BaseConv, CSPLayer, Focus, SPPBottleneck
from togethernet_ros.model.config import TogetherNetConfig
from togethernet_ros.model.deformable import DeformConv2d
from togethernet_ros.model.transformer import C3TR


class CSPDarknet(nn.Module):
    """YOLOX CSPDarknet returning (dark3, dark4, DTFE(dark5)) at strides 8, 16, 32.

    DTFE = the deformable conv ``deconv`` applied ``deform_repeats`` times with the same weights,
    then the transformer CSP layer ``swt1``. Registration order follows upstream (``swt1``
    between dark3 and dark4, ``deconv`` last) because it fixes the checkpoint key order.
    """

    def __init__(self, config: TogetherNetConfig, deform_impl: str = "fast") -> None:
        super().__init__()
        bn = {"bn_eps": config.bn_eps, "bn_momentum": config.bn_momentum}
        c2, c3, c4, c5 = config.backbone_channels
        depth = config.backbone_depth
        self.deform_repeats = config.deform_repeats

        self.stem = Focus(config.image_channels, config.stem_channels, 3, **bn)
        self.dark2 = nn.Sequential(
            BaseConv(config.stem_channels, c2, 3, 2, **bn),
            CSPLayer(c2, c2, depth, **bn),
        )
        self.dark3 = nn.Sequential(
            BaseConv(c2, c3, 3, 2, **bn),
            CSPLayer(c3, c3, depth * 3, **bn),
        )
        self.swt1 = C3TR(
            c5,
            c5,
            num_heads=config.transformer_heads,
            num_layers=config.transformer_layers,
            mlp_ratio=config.transformer_mlp_ratio,
            dropout=config.transformer_dropout,
            **bn,
        )
        self.dark4 = nn.Sequential(
            BaseConv(c3, c4, 3, 2, **bn),
            CSPLayer(c4, c4, depth * 3, **bn),
        )
        self.dark5 = nn.Sequential(
            BaseConv(c4, c5, 3, 2, **bn),
            SPPBottleneck(c5, c5, config.spp_kernel_sizes, **bn),
            CSPLayer(c5, c5, depth, shortcut=False, **bn),
        )
        self.deconv = DeformConv2d(c5, c5, config.deform_kernel_size, impl=deform_impl)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image (N, 3, H, W) -> (dark3 @ s8, dark4 @ s16, enhanced dark5 @ s32)."""
        x = self.dark2(self.stem(x))
        dark3 = self.dark3(x)
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.enhance(self.dark5(dark4))

    def enhance(self, dark5: torch.Tensor) -> torch.Tensor:
        """DTFE: repeated weight-shared deformable conv, then the transformer CSP layer."""
        x = dark5
        for _ in range(self.deform_repeats):
            x = self.deconv(x)
        return self.swt1(x)
