"""The folded DTFE transformer computes the published function with fewer matmuls."""

from __future__ import annotations

import copy

import pytest
import torch

from togethernet_ros.inference.transformer_fusion import (
    FusedTransformerBlock,
    fuse_transformers,
)
from togethernet_ros.model import build_model
from togethernet_ros.model.transformer import TransformerBlock

from .test_deformable_fusion import _KernelCount


def _block(layers: int, seed: int = 0) -> TransformerBlock:
    """A block with every weight and bias drawn at a scale where attention is far from uniform."""
    torch.manual_seed(seed)
    block = TransformerBlock(32, num_heads=4, num_layers=layers).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0.0, 0.3)
    return block


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_block_equals_the_published_block(layers, batch, channels_last):
    block = _block(layers).double()
    fused = FusedTransformerBlock(copy.deepcopy(block)).eval()
    x = torch.randn(batch, 32, 5, 7, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, found = block(x), fused(x)
    assert expected.abs().max() > 1  # not a degenerate, near-zero output
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-10)


def test_fused_block_in_float32():
    block = _block(1)
    fused = FusedTransformerBlock(copy.deepcopy(block)).eval()
    x = torch.randn(2, 32, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x), rtol=1e-5, atol=1e-5)


def test_fused_block_runs_six_fewer_ops():
    block = _block(1)
    fused = FusedTransformerBlock(copy.deepcopy(block)).eval()
    x = torch.randn(1, 32, 6, 10).contiguous(memory_format=torch.channels_last)
    counts = {}
    with torch.no_grad():
        for name, module in (("published", block), ("fused", fused)):
            with _KernelCount() as counter:
                module(x)
            counts[name] = counter.ops
    # embedding, q, k, v, three in-projections, out, fc1, fc2
    assert counts["published"]["mm"] + counts["published"]["addmm"] == 10
    assert counts["fused"]["mm"] + counts["fused"]["addmm"] == 5  # embedding, qkv, out, fc1, fc2
    assert sum(counts["fused"].values()) <= sum(counts["published"].values()) - 6


def test_whole_model_fusion_and_its_preconditions():
    model = build_model(num_classes=5).eval()
    assert fuse_transformers(model) == 1  # the DTFE has one transformer layer
    assert not any(isinstance(m, TransformerBlock) for m in model.modules())
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_transformers(build_model(num_classes=5).train())
    block = _block(1)
    block.tr[0].ma.batch_first = True
    with pytest.raises(ValueError, match="MultiheadAttention as TogetherNet builds it"):
        FusedTransformerBlock(block)
