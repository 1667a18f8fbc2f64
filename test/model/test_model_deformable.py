"""Both DCN strategies against a slow, obvious loop-and-bilinear reference."""

from __future__ import annotations

import math

import pytest
import torch

from togethernet_ros.model.deformable import (
    DeformConv2d,
    deform_conv_gather,
    deform_conv_grid_sample,
)

IMPLS = {"fast": deform_conv_grid_sample, "gather": deform_conv_gather}


def reference_deform_conv(x, offset, mask, weight):
    """Literal definition, float64: per output pixel and kernel point, a zero-padded bilinear
    sample at (i + r - h + dy, j + c - h + dx), scaled by the mask, times W[:, :, r, c]."""
    x, offset, mask, weight = (t.double() for t in (x, offset, mask, weight))
    batch, channels, height, width = x.shape
    out_channels, _, k, _ = weight.shape
    points, half = k * k, (k - 1) // 2
    out = torch.zeros(batch, out_channels, height, width, dtype=torch.float64)

    def pixel(n, row, col):
        if 0 <= row < height and 0 <= col < width:
            return x[n, :, row, col]
        return torch.zeros(channels, dtype=torch.float64)

    for n in range(batch):
        for i in range(height):
            for j in range(width):
                for p in range(points):
                    r, c = divmod(p, k)
                    sy = i + r - half + offset[n, p, i, j].item()
                    sx = j + c - half + offset[n, points + p, i, j].item()
                    y0, x0 = math.floor(sy), math.floor(sx)
                    fy, fx = sy - y0, sx - x0
                    value = (
                        (1 - fy) * (1 - fx) * pixel(n, y0, x0)
                        + (1 - fy) * fx * pixel(n, y0, x0 + 1)
                        + fy * (1 - fx) * pixel(n, y0 + 1, x0)
                        + fy * fx * pixel(n, y0 + 1, x0 + 1)
                    )
                    out[n, :, i, j] += mask[n, p, i, j] * (weight[:, :, r, c] @ value)
    return out


def _random_case(seed: int, offset_scale: float, height: int = 5, width: int = 7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, height, width, generator=g)
    offset = (torch.rand(2, 18, height, width, generator=g) * 2 - 1) * offset_scale
    mask = torch.rand(2, 9, height, width, generator=g)
    weight = torch.randn(4, 3, 3, 3, generator=g)
    return x, offset, mask, weight


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize(
    ("seed", "offset_scale"),
    [(0, 0.9), (1, 3.5)],  # within one pixel like trained weights; far off the border
)
def test_matches_loop_reference(impl, seed, offset_scale):
    x, offset, mask, weight = _random_case(seed, offset_scale)
    expected = reference_deform_conv(x, offset, mask, weight)
    got = IMPLS[impl](x, offset, mask, weight)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_integer_offsets_and_exact_border_positions(impl):
    """Samples exactly on border pixels, one pixel outside, and far outside."""
    x, _, mask, weight = _random_case(2, 1.0, height=4, width=6)
    g = torch.Generator().manual_seed(3)
    offset = torch.randint(-3, 4, (2, 18, 4, 6), generator=g).float()
    offset[:, :3] = -1.0  # top kernel row of row 0 lands on row -2
    expected = reference_deform_conv(x, offset, mask, weight)
    got = IMPLS[impl](x, offset, mask, weight).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_offset_layout_is_rows_then_columns():
    """A pure column shift (second half of the channels) moves the sample along the row."""
    x = torch.arange(30, dtype=torch.float32).reshape(1, 1, 5, 6)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # centre tap only
    offset = torch.zeros(1, 18, 5, 6)
    offset[:, 9 + 4] = 1.0  # centre point's column offset
    mask = torch.ones(1, 9, 5, 6)
    for sample in IMPLS.values():
        out = sample(x, offset, mask, weight)
        assert out[0, 0, 2, 2].item() == x[0, 0, 2, 3].item()
        assert out[0, 0, 2, 5].item() == 0.0  # shifted off the right border


def test_zero_offsets_equal_plain_convolution_times_mask():
    x, _, _, weight = _random_case(4, 0.0)
    offset = torch.zeros(2, 18, 5, 7)
    mask = torch.full((2, 9, 5, 7), 0.5)
    plain = torch.nn.functional.conv2d(x, weight, padding=1) * 0.5
    for sample in IMPLS.values():
        torch.testing.assert_close(sample(x, offset, mask, weight), plain, rtol=1e-5, atol=1e-5)


def test_module_impls_agree_with_learned_offsets():
    torch.manual_seed(5)
    fast = DeformConv2d(8, 6, impl="fast")
    with torch.no_grad():
        fast.p_conv.weight.normal_(0, 0.3)
        fast.p_conv.bias.normal_(0, 1.5)  # push many samples across the border
        fast.m_conv.weight.normal_(0, 0.3)
        fast.conv.weight.normal_(0, 0.3)
    gather = DeformConv2d(8, 6, impl="gather")
    gather.load_state_dict(fast.state_dict())
    x = torch.randn(2, 8, 6, 9)
    torch.testing.assert_close(fast(x), gather(x), rtol=1e-5, atol=1e-5)


def test_fast_gradients_match_finite_differences():
    x, offset, mask, weight = (t.double() for t in _random_case(6, 0.8, height=3, width=4))
    small = (x[:1, :2], offset[:1], mask[:1], weight[:2, :2])  # gradcheck cost grows fast
    inputs = [t.clone().requires_grad_(True) for t in small]
    assert torch.autograd.gradcheck(
        deform_conv_grid_sample, inputs, eps=1e-6, atol=1e-5, fast_mode=True
    )


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="deform impl"):
        DeformConv2d(4, 4, impl="cuda-magic")
