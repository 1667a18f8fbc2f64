"""Model API behaviour: input sizes, restore switch, train mode, gradients, config."""

from __future__ import annotations

import json

import pytest
import torch

from togethernet_ros.model import (
    DEFAULT_CLASS_NAMES,
    ModelOutput,
    TogetherNetConfig,
    build_model,
    check_input_size,
    recorded_input_size,
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model().eval()


def test_default_class_names():
    assert DEFAULT_CLASS_NAMES == ("person", "bicycle", "car", "motorbike", "bus")


@pytest.mark.parametrize(
    ("size", "expected"),
    [(640, (640, 640)), ((384, 640), (384, 640)), ([128, 256], (128, 256))],
)
def test_check_input_size_accepts_multiples_of_128(size, expected):
    assert check_input_size(size) == expected


@pytest.mark.parametrize("size", [600, (640, 600), (360, 640), 0, -128, (0, 128)])
def test_check_input_size_rejects_other_sizes(size):
    with pytest.raises(ValueError, match=r"multiples of 128") as info:
        check_input_size(size)
    assert "x" in str(info.value)  # names the offending HxW


@pytest.mark.parametrize("size", ["640", (1, 2, 3), None, True])
def test_check_input_size_rejects_malformed(size):
    with pytest.raises(ValueError, match="input size"):
        check_input_size(size)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"input_size": 384}, (384, 384)),  # the distiller records one side
        ({"input_size": [384, 640]}, (384, 640)),
        ({"epoch": 3}, None),  # says nothing
        ({"input_size": None}, None),
        ({"input_size": 600}, None),  # unusable: the caller's default applies, not an error
        ({"input_size": "big"}, None),
    ],
)
def test_recorded_input_size_reads_only_usable_sizes(metadata, expected):
    assert recorded_input_size(metadata) == expected


def test_forward_rejects_unsupported_size_and_channels(model):
    with torch.no_grad():
        with pytest.raises(ValueError, match="320x300"):
            model(torch.zeros(1, 3, 320, 300))
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
            model(torch.zeros(1, 1, 256, 256))
        with pytest.raises(ValueError, match=r"float tensor, got torch\.uint8"):
            model(torch.zeros(1, 3, 256, 256, dtype=torch.uint8))


def test_output_is_named_tuple_and_restore_off_keeps_maps(model):
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        full = model(x)
        detect_only = model(x, restore=False)
    assert isinstance(full, ModelOutput)
    maps, dehazed = full  # tuple unpacking is part of the contract
    assert full[0] is full.maps and full[1] is full.dehazed
    assert [tuple(m.shape) for m in maps] == [(2, 10, 32, 32), (2, 10, 16, 16), (2, 10, 8, 8)]
    assert dehazed.shape == (2, 3, 256, 256)
    assert dehazed.abs().max() <= 1.0  # Tanh output
    assert detect_only.dehazed is None
    for a, b in zip(full.maps, detect_only.maps, strict=True):
        assert torch.equal(a, b)
    assert model.strides == (8, 16, 32)
    assert model.config == TogetherNetConfig()


def test_rectangular_input(model):
    """384x640 (16:9 cameras) runs end to end; fast and published tails agree on it."""
    x = torch.randn(1, 3, 384, 640)
    with torch.no_grad():
        maps, dehazed = model(x)
        decoder = model.backbone.decoder
        features = torch.randn(1, 64, 24, 40)  # non-square, small: the published tail is slow
        fast_tail = decoder.fast_tail(features)
        published_tail = decoder.published_tail(features)
    assert [tuple(m.shape[-2:]) for m in maps] == [(48, 80), (24, 40), (12, 20)]
    assert dehazed.shape == (1, 3, 384, 640)
    assert all(torch.isfinite(m).all() for m in maps)
    torch.testing.assert_close(fast_tail, published_tail, rtol=1e-4, atol=2e-5)


def test_channels_last_gives_the_same_outputs(model):
    x = torch.randn(1, 3, 128, 256)
    nhwc = build_model().eval().to(memory_format=torch.channels_last)
    nhwc.load_state_dict(model.state_dict())
    with torch.no_grad():
        a = model(x)
        b = nhwc(x.contiguous(memory_format=torch.channels_last))
    for ma, mb in zip(a.maps, b.maps, strict=True):
        torch.testing.assert_close(ma, mb, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.dehazed, b.dehazed, rtol=1e-4, atol=2e-4)


def test_fast_and_gather_models_agree_on_rectangular_input():
    torch.manual_seed(1)
    fast = build_model().eval()
    with torch.no_grad():  # non-zero offsets so the deformable sampling matters
        fast.backbone.backbone.deconv.p_conv.weight.normal_(0, 0.01)
        fast.backbone.backbone.deconv.m_conv.weight.normal_(0, 0.01)
    gather = build_model(deform_impl="gather").eval()
    gather.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, 128, 384)
    with torch.no_grad():
        a, b = fast(x), gather(x)
    for ma, mb in zip(a.maps, b.maps, strict=True):
        torch.testing.assert_close(ma, mb, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.dehazed, b.dehazed, rtol=1e-4, atol=2e-4)


def test_train_mode_returns_same_tuple_and_every_parameter_gets_a_gradient():
    torch.manual_seed(2)
    net = build_model().train()
    x = torch.randn(2, 3, 128, 128)
    out = net(x)
    assert isinstance(out, ModelOutput) and out.dehazed is not None
    # Random projections so no output channel gets a cancelling, symmetric gradient.
    g = torch.Generator().manual_seed(3)
    loss = sum((m * torch.randn(m.shape, generator=g)).sum() for m in out.maps)
    loss = loss + (out.dehazed * torch.randn(out.dehazed.shape, generator=g)).sum()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
        assert parameter.grad.abs().max() > 0, f"{name} has an all-zero gradient"
    names = {name for name, _ in net.named_parameters()}
    assert "backbone.backbone.swt1.m.tr.0.ma.in_proj_weight" in names


def test_num_classes_sets_head_width():
    net = build_model(num_classes=3)
    assert net.head.cls_preds[0].out_channels == 3
    assert net.config.num_classes == 3
    assert build_model(config=TogetherNetConfig(num_classes=7)).config.num_classes == 7


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="deform_impl"):
        build_model(deform_impl="torchvision")
    with pytest.raises(ValueError, match="contradicts"):
        build_model(num_classes=3, config=TogetherNetConfig(num_classes=5))
    with pytest.raises(ValueError, match="num_classes"):
        TogetherNetConfig(num_classes=0)


def test_config_round_trip_uses_plain_types():
    config = TogetherNetConfig(num_classes=2, spp_kernel_sizes=(3, 5))
    as_dict = config.to_dict()
    json.dumps(as_dict)  # only plain python types
    assert TogetherNetConfig.from_dict(json.loads(json.dumps(as_dict))) == config
    with pytest.raises(ValueError, match="unknown TogetherNetConfig field"):
        TogetherNetConfig.from_dict({**as_dict, "colour": "blue"})
    with pytest.raises(AttributeError):
        config.num_classes = 3  # frozen


def test_derived_channels_of_the_published_config():
    config = TogetherNetConfig()
    assert config.backbone_channels == (64, 128, 256, 512)
    assert config.neck_channels == (128, 256, 512)
    assert (config.backbone_depth, config.neck_depth, config.head_width) == (1, 1, 128)
