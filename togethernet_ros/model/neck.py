"""TogetherNet feature pyramid: CSPDarknet+DTFE, YOLOX PAFPN and self-calibrated blocks."""

from __future__ import annotations

import torch
from torch import nn

from togethernet_ros.model.blocks import BaseConv, CSPLayer
from togethernet_ros.model.config import TogetherNetConfig
from togethernet_ros.model.darknet import CSPDarknet
from togethernet_ros.model.restoration import RestorationDecoder
from togethernet_ros.model.self_calibration import SCBottleneck


class TogetherNetPAFPN(nn.Module):
    """Upstream ``YOLOPAFPN``: backbone, PAFPN with SC blocks, and the restoration decoder.

    The decoder is owned here (not by the top-level model) only because the upstream
    checkpoint keys are ``backbone.decoder.*``; :class:`TogetherNet` decides whether to run it.
    """

    def __init__(
        self,
        config: TogetherNetConfig,
        deform_impl: str = "fast",
        restoration_impl: str = "fast",
    ) -> None:
        super().__init__()
        bn = {"bn_eps": config.bn_eps, "bn_momentum": config.bn_momentum}
        p3, p4, p5 = config.neck_channels
        depth = config.neck_depth
        sc = {"pooling": config.sc_pooling, "negative_slope": config.sc_negative_slope}

        self.backbone = CSPDarknet(config, deform_impl=deform_impl)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(p5, p4, 1, **bn)
        self.C3_p4 = CSPLayer(2 * p4, p4, depth, shortcut=False, **bn)
        self.reduce_conv1 = BaseConv(p4, p3, 1, **bn)
        self.C3_p3 = CSPLayer(2 * p3, p3, depth, shortcut=False, **bn)
        self.bu_conv2 = BaseConv(p3, p3, 3, 2, **bn)
        self.C3_n3 = CSPLayer(2 * p3, p4, depth, shortcut=False, **bn)
        self.bu_conv1 = BaseConv(p4, p4, 3, 2, **bn)
        self.C3_n4 = CSPLayer(2 * p4, p5, depth, shortcut=False, **bn)
        self.sc1 = SCBottleneck(p3, **sc)
        self.sc2 = SCBottleneck(p3, **sc)
        self.sc3 = SCBottleneck(p4, **sc)
        self.decoder = RestorationDecoder(config, impl=restoration_impl)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Image -> ([P3, P4, P5] for the head, (dark3, dark4, DTFE output) for the decoder)."""
        dark3, dark4, enhanced = self.backbone(x)

        p5 = self.lateral_conv0(enhanced)
        p5_up = self.C3_p4(torch.cat((self.upsample(p5), dark4), dim=1))
        p4 = self.reduce_conv1(p5_up)
        p4_up = self.sc1(self.upsample(p4))
        p3_out = self.C3_p3(torch.cat((p4_up, dark3), dim=1))

        p3_down = self.sc2(self.bu_conv2(p3_out))
        p4_out = self.C3_n3(torch.cat((p3_down, p4), dim=1))
        p4_down = self.sc3(self.bu_conv1(p4_out))
        p5_out = self.C3_n4(torch.cat((p4_down, p5), dim=1))
        return [p3_out, p4_out, p5_out], (dark3, dark4, enhanced)
