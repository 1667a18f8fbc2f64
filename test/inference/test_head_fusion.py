"""The merged box + objectness conv gives the published head's maps with three convs fewer."""

from __future__ import annotations

import copy

import pytest
import torch

from togethernet_ros.inference.head_fusion import FusedYOLOXHead, fuse_heads
from togethernet_ros.model import build_model
from togethernet_ros.model.config import TogetherNetConfig
from togethernet_ros.model.head import YOLOXHead

from .test_deformable_fusion import _KernelCount


def _head_and_features(batch: int):
    config = TogetherNetConfig(num_classes=3)
    torch.manual_seed(0)
    head = YOLOXHead(config).eval().double()
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0.0, 0.1)
    features = [
        torch.randn(batch, channels, 16 // 2**level, 20 // 2**level, dtype=torch.float64)
        for level, channels in enumerate(config.neck_channels)
    ]
    return head, features


@pytest.mark.parametrize("batch", [1, 2])
def test_fused_head_gives_the_published_maps(batch):
    head, features = _head_and_features(batch)
    fused = FusedYOLOXHead(copy.deepcopy(head)).eval()
    with torch.no_grad():
        expected, found = head(features), fused(features)
        for want, got in zip(expected, found, strict=True):
            assert got.shape == want.shape and got.shape[1] == 5 + 3
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        counts = {}
        for name, module in (("published", head), ("fused", fused)):
            with _KernelCount() as counter:
                module(features)
            counts[name] = counter.ops["convolution"]
    assert (counts["published"], counts["fused"]) == (24, 21)


def test_whole_model_head_fusion_and_its_precondition():
    model = build_model(num_classes=5).eval()
    assert fuse_heads(model) == 1
    assert isinstance(model.head, FusedYOLOXHead)
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_heads(build_model(num_classes=5).train())
