"""YOLOX decoupled detection head."""

from __future__ import annotations

import torch
from torch import nn

from togethernet_ros.model.blocks import BaseConv
from togethernet_ros.model.config import TogetherNetConfig


class YOLOXHead(nn.Module):
    """Per level: 1x1 stem, then a cls branch and a reg branch of two 3x3 BaseConvs each.

    Objectness is predicted from the reg features. Each output map has channels
    ``[x, y, w, h, obj, cls...]`` before any sigmoid/exp. Attribute registration order is the
    upstream one (cls_convs, reg_convs, cls_preds, reg_preds, obj_preds, stems).
    """

    def __init__(self, config: TogetherNetConfig) -> None:
        super().__init__()
        bn = {"bn_eps": config.bn_eps, "bn_momentum": config.bn_momentum}
        hidden = config.head_width
        levels = config.neck_channels
        self.cls_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3, **bn), BaseConv(hidden, hidden, 3, **bn))
            for _ in levels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3, **bn), BaseConv(hidden, hidden, 3, **bn))
            for _ in levels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, config.num_classes, 1) for _ in levels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in levels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in levels)
        self.stems = nn.ModuleList(BaseConv(channels, hidden, 1, **bn) for channels in levels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Pyramid features (strides 8, 16, 32) -> raw maps (N, 5 + num_classes, H_l, W_l)."""
        outputs = []
        for level, feature in enumerate(features):
            x = self.stems[level](feature)
            cls_logits = self.cls_preds[level](self.cls_convs[level](x))
            reg_feat = self.reg_convs[level](x)
            box = self.reg_preds[level](reg_feat)
            obj = self.obj_preds[level](reg_feat)
            outputs.append(torch.cat((box, obj, cls_logits), dim=1))
        return outputs
