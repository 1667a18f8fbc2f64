"""The fused deformable convolution computes the published function with a fraction of the ops."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from togethernet_ros.inference.batch_norm_folding import fold_batch_norms
from togethernet_ros.inference.deformable_fusion import (
    FusedDeformConv2d,
    fuse_deformable_convs,
)
from togethernet_ros.inference.torch_detector import TorchDetector
from togethernet_ros.inference.transformer_fusion import FusedTransformerBlock
from togethernet_ros.model import DEFAULT_CLASS_NAMES, build_model
from togethernet_ros.model.deformable import DeformConv2d, deform_conv_gather

from .conftest import scene

# Ops that only re-describe memory; everything else launches at least one kernel on a GPU.
VIEW_OPS = {"view", "_unsafe_view", "t", "transpose", "unsqueeze", "permute", "expand", "slice"}
VIEW_OPS |= {"split", "unbind", "alias", "select", "detach", "unflatten", "promote_types"}


class _KernelCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in VIEW_OPS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def _deform(in_channels: int = 32, out_channels: int = 24, seed: int = 0) -> DeformConv2d:
    """A DCN whose offsets reach several pixels (some samples leave the map) and vary per point."""
    torch.manual_seed(seed)
    module = DeformConv2d(in_channels, out_channels).eval()
    for conv, bias_std in ((module.p_conv, 3.0), (module.m_conv, 1.0)):
        torch.nn.init.normal_(conv.weight, std=0.2)
        torch.nn.init.normal_(conv.bias, std=bias_std)
    return module


def _features(batch: int, channels: int, height: int, width: int, channels_last: bool):
    x = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(1))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_module_equals_the_published_function(channels_last, batch):
    deform = _deform().double()
    fused = FusedDeformConv2d(deform).eval()
    x = _features(batch, 32, 6, 9, channels_last).double()
    with torch.no_grad():
        expected = deform(x)
        found = fused(x)
        offset, mask = deform.p_conv(x), torch.sigmoid(deform.m_conv(x))
        published = deform_conv_gather(x, offset, mask, deform.conv.weight)
    assert offset.abs().max() > 4  # samples really leave the map: zero padding is exercised
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(found, published, rtol=0, atol=1e-10)
    # The output keeps the input's memory format, so the next convolution needs no copy.
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert found.is_contiguous(memory_format=memory_format)


def test_fused_module_in_float32_and_at_a_second_map_size():
    deform = _deform()
    fused = FusedDeformConv2d(deform).eval()
    with torch.no_grad():
        for height, width in ((5, 7), (8, 4), (5, 7)):  # the cached base grid follows the size
            x = _features(2, 32, height, width, channels_last=True)
            torch.testing.assert_close(fused(x), deform(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2])
def test_channel_groups_give_bit_identical_samples(batch):
    deform = _deform()
    x = _features(batch, 32, 5, 7, channels_last=True)
    with torch.no_grad():
        whole = FusedDeformConv2d(deform, channels_per_thread=None)(x)
        for per_thread in (4, 16):
            grouped = FusedDeformConv2d(deform, channels_per_thread=per_thread)(x)
            assert torch.equal(grouped, whole), per_thread


def test_channel_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="channels_per_thread=5 does not divide 32 channels"):
        FusedDeformConv2d(_deform(), channels_per_thread=5)


def test_fused_module_launches_a_quarter_of_the_ops():
    deform = _deform()
    fused = FusedDeformConv2d(deform).eval()
    x = _features(1, 32, 6, 10, channels_last=True)
    with torch.no_grad():
        fused(x)  # builds the cached base grid
        counts = {}
        for name, module in (("published", deform), ("fused", fused)):
            with _KernelCount() as counter:
                module(x)
            counts[name] = sum(counter.ops.values())
    assert counts["published"] >= 20
    assert counts["fused"] <= 7, counts


def test_whole_model_fused_equals_unfused_and_leaves_the_gather_baseline_alone():
    model = build_model(num_classes=5).eval()
    for module in model.modules():
        if isinstance(module, DeformConv2d):  # informative offsets instead of the zero init
            torch.nn.init.normal_(module.p_conv.weight, std=0.02)
            torch.nn.init.normal_(module.p_conv.bias, std=2.0)
    fold_batch_norms(model)
    fused_model = build_model(num_classes=5).eval()
    fold_batch_norms(fused_model)
    fused_model.load_state_dict(model.state_dict())
    assert fuse_deformable_convs(fused_model) == 1  # one module, applied twice by the DTFE
    assert not any(isinstance(m, DeformConv2d) for m in fused_model.modules())
    x = torch.rand(1, 3, 128, 256)
    with torch.no_grad():
        expected, found = model(x, restore=False), fused_model(x, restore=False)
    for want, got in zip(expected.maps, found.maps, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    baseline = build_model(num_classes=5, deform_impl="gather").eval()
    assert fuse_deformable_convs(baseline) == 0
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_deformable_convs(build_model(num_classes=5).train())


def test_detector_runs_the_fused_forms_unless_told_not_to(informative_model):
    frames = [scene(120, 160, seed=3), scene(90, 200, seed=5)]
    options = dict(input_size=(128, 256), conf_threshold=0.05, nms_threshold=0.45)
    fused = TorchDetector(informative_model, DEFAULT_CLASS_NAMES, **options)
    plain = TorchDetector(informative_model, DEFAULT_CLASS_NAMES, fuse_modules=False, **options)
    kinds = {type(module) for module in fused.model.modules()}
    assert {FusedDeformConv2d, FusedTransformerBlock} <= kinds and DeformConv2d not in kinds
    assert any(isinstance(m, DeformConv2d) for m in plain.model.modules())
    for want, got in zip(plain.detect(frames), fused.detect(frames), strict=True):
        assert len(want.detections) > 0
        np.testing.assert_array_equal(got.detections.class_ids, want.detections.class_ids)
        np.testing.assert_allclose(got.detections.boxes, want.detections.boxes, atol=1e-3)
        np.testing.assert_allclose(got.detections.scores, want.detections.scores, atol=1e-5)
