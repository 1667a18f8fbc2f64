"""Merge the head's box and objectness predictions into one conv per level (inference only).

YOLOX predicts the box (4 channels) and the objectness (1 channel) of each level with two 1x1
convs on the same regression features; on a GPU each is a cuDNN launch plus a bias add. Their
weights concatenated give one 5-channel conv that computes both, in the order the head's output
map already has ([x, y, w, h, obj, cls...]).
"""

from __future__ import annotations

import torch
from torch import nn

from togethernet_ros.inference.module_replacement import replace_modules
from togethernet_ros.model.head import YOLOXHead


class FusedYOLOXHead(nn.Module):
    """Inference form of `YOLOXHead`: the same maps with one box+objectness conv per level."""

    def __init__(self, head: YOLOXHead) -> None:
        super().__init__()
        self.stems, self.cls_convs, self.reg_convs = head.stems, head.cls_convs, head.reg_convs
        self.cls_preds = head.cls_preds
        self.box_obj_preds = nn.ModuleList(
            _concatenated(box, obj) for box, obj in zip(head.reg_preds, head.obj_preds, strict=True)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Pyramid features (strides 8, 16, 32) -> raw maps (N, 5 + num_classes, H_l, W_l)."""
        outputs = []
        for level, feature in enumerate(features):
            x = self.stems[level](feature)
            cls_logits = self.cls_preds[level](self.cls_convs[level](x))
            box_obj = self.box_obj_preds[level](self.reg_convs[level](x))
            outputs.append(torch.cat((box_obj, cls_logits), dim=1))
        return outputs


def _concatenated(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    weight = first.weight
    merged = nn.Conv2d(
        first.in_channels,
        first.out_channels + second.out_channels,
        first.kernel_size,
        stride=first.stride,
        padding=first.padding,
        bias=True,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        merged.weight.copy_(torch.cat((first.weight, second.weight)))
        biases = [
            conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0, 0])
            for conv in (first, second)
        ]
        merged.bias.copy_(torch.cat(biases))
    return merged.requires_grad_(False)


def fuse_heads(model: nn.Module) -> int:
    """Replace, in place, every `YOLOXHead` of `model` by a `FusedYOLOXHead`; returns the count."""
    heads = replace_modules(
        model,
        lambda module: isinstance(module, YOLOXHead),
        FusedYOLOXHead,  # type: ignore[arg-type]
        "fuse_heads",
    )
    return len(heads)
