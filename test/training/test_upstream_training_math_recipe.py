"""The rest of the published training recipe, by hand: LR schedule, EMA ramp, decay groups,
paired augmentation geometry, and the config checks that keep the loss and augmentation sane.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from togethernet_ros.training.lr_schedule import published_schedule
from togethernet_ros.training.model_ema import ModelEMA
from togethernet_ros.training.optimizer_groups import build_sgd, split_decay_groups
from togethernet_ros.training.paired_augmentation import (
    AugmentationConfig,
    paired_random_augment,
)
from togethernet_ros.training.train_config import TrainConfig, load_train_config

# ---------------------------------------------------------------------------------------------
# LR: 100 epochs of 10 steps, lr 0.01: warm-up 30 steps from 0.001 (quadratic), flat minimum
# 1e-4 over the last 150 steps, cosine over the 820 in between.


@pytest.mark.parametrize(
    ("step", "lr"),
    [
        (0, 0.001),  # warm-up start: 0.1 × lr
        (15, 0.00325),  # (0.01 − 0.001)·(15/30)² + 0.001
        (30, 0.01),  # end of warm-up: the full lr
        (235, 0.00855017856687341),  # cosine at a quarter: 1e-4 + 0.5·0.0099·(1 + cos π/4)
        (440, 0.00505),  # cosine half way: the mean of lr and its minimum
        (850, 1e-4),  # first step of the flat minimum (1000 − 150)
        (999, 1e-4),
    ],
)
def test_schedule_values_by_hand(step, lr):
    schedule = published_schedule(0.01, epochs=100, steps_per_epoch=10)
    assert schedule(step) == pytest.approx(lr, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# EMA: d = 0.9999·(1 − exp(−updates / 2000)), ema = d·ema + (1 − d)·model.


def _one_weight(value: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_ema_first_update_follows_the_model_almost_fully():
    model = _one_weight(1.0)
    ema = ModelEMA(model)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema.update(model)
    # d(1) = 0.9999·(1 − e^(−1/2000)) = 0.000499825: the average is 0.0005·old + 0.9995·new.
    assert float(ema.module.weight) == pytest.approx(0.000499825033328626, rel=1e-5)


def test_ema_decay_at_update_2000_is_0_632():
    model = _one_weight(1.0)
    ema = ModelEMA(model)
    ema.updates = 1999
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema.update(model)
    # d(2000) = 0.9999·(1 − e^(−1)) = 0.632057
    assert float(ema.module.weight) == pytest.approx(0.6320573467726748, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Decay groups: weight decay on conv, transposed-conv, linear and attention weights; none on
# norm scales, norm shifts or any bias. Every trainable parameter in exactly one group.


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.deconv = nn.ConvTranspose2d(4, 4, 3, bias=False)
        self.norm = nn.LayerNorm(8)
        self.linear = nn.Linear(8, 8)
        self.attention = nn.MultiheadAttention(8, 2)


def test_decay_groups_by_role():
    model = _Mixed()
    decay, no_decay = split_decay_groups(model)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay) == [
        "attention.in_proj_weight",  # upstream left it in no group: never trained
        "attention.out_proj.weight",
        "conv.weight",
        "deconv.weight",
        "linear.weight",
    ]
    assert sorted(names[id(p)] for p in no_decay) == [
        "attention.in_proj_bias",
        "attention.out_proj.bias",
        "bn.bias",
        "bn.weight",
        "conv.bias",
        "linear.bias",
        "norm.bias",
        "norm.weight",
    ]


def test_published_sgd_settings():
    optimizer = build_sgd(_Mixed(), lr=0.00125, momentum=0.937, weight_decay=5e-4)
    free, decayed = optimizer.param_groups
    assert (free["weight_decay"], decayed["weight_decay"]) == (0.0, 5e-4)
    for group in (free, decayed):
        assert group["nesterov"] is True and group["momentum"] == 0.937
        assert group["lr"] == 0.00125


# ---------------------------------------------------------------------------------------------
# Paired augmentation on a 100x50 white image into 64x64, scale 0.5, no aspect jitter, always
# flipped, no colour change: the image becomes 32x16 (int(0.5·64) wide, aspect 2), pasted at a
# random (dx, dy) on grey 128, then mirrored. A box (20, 10, 60, 40) scales by 32/100 and 16/50
# = 0.32 to (6.4, 3.2, 19.2, 12.8) + (dx, dy), and the flip maps x to 64 − x.


def _white_patch_corner(image: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero((image != 128).any(-1))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def test_paired_augmentation_geometry_by_hand():
    config = AugmentationConfig(
        scale_min=0.5,
        scale_max=0.5,
        aspect_jitter=0.0,
        flip_probability=1.0,
        hue=0.0,
        saturation=0.0,
        value=0.0,
    )
    hazy = np.full((50, 100, 3), 255, np.uint8)
    clean = np.full((50, 100, 3), 200, np.uint8)
    boxes = np.array([[20.0, 10.0, 60.0, 40.0]], np.float32)
    out_hazy, out_clean, out_boxes, keep = paired_random_augment(
        hazy, clean, boxes, (64, 64), np.random.default_rng(7), config
    )
    x0, y0, x1, y1 = _white_patch_corner(out_hazy)
    assert (x1 - x0, y1 - y0) == (32, 16)
    assert _white_patch_corner(out_clean) == (x0, y0, x1, y1)  # same draws for both images
    assert set(np.unique(out_hazy)) == {128, 255} and set(np.unique(out_clean)) == {128, 200}
    dx, dy = 64 - x1, y0  # the paste offset before the mirror
    expected = [64 - (19.2 + dx), 3.2 + dy, 64 - (6.4 + dx), 12.8 + dy]
    assert keep.tolist() == [True]
    np.testing.assert_allclose(out_boxes[0], expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Config checks: a value that breaks the objective or the images is refused when the config is
# read, in one line naming the key (not a crash in the first step, nor a silently bad run).


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("loss", "topk", 0),
        ("loss", "iou_weight", -5.0),
        ("loss", "obj_gamma", -2.0),
        ("loss", "center_radius", 0.0),
        ("loss", "restoration_weight", float("nan")),
        ("augmentation", "aspect_jitter", 1.5),
        ("augmentation", "scale_min", 3.0),
        ("augmentation", "saturation", 1.7),
        ("augmentation", "flip_probability", 2.0),
        ("augmentation", "min_box_size", -1.0),
        # Accepted before, they failed mid-run (a negative seed) or ruined the saved weights
        # silently (BatchNorm statistics never updated; an EMA frozen after its ramp).
        ("train", "seed", -1),
        ("model", "bn_momentum", 0.0),
        ("model", "bn_momentum", -0.1),
        ("train", "ema_decay", 1.0),
    ],
)
def test_bad_loss_or_augmentation_value_is_refused_at_load(section, key, value):
    with pytest.raises(ValueError, match=rf"{section}\.{key}") as raised:
        TrainConfig.from_dict({section: {key: value}})
    assert "\n" not in str(raised.value)


def test_both_objective_weights_zero_is_refused():
    with pytest.raises(ValueError, match="nothing would train"):
        load_train_config(None, ["loss.detection_weight=0", "loss.restoration_weight=0"])


def test_published_defaults_pass_the_checks():
    config = load_train_config(None, ["loss.restoration_weight=0", "augmentation.hue=0"])
    assert config.loss.topk == 10 and config.augmentation.scale_max == 2.0
