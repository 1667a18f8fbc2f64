"""Training must stop on non-finite numbers instead of saving NaN weights; odd labels stay finite."""

import math

import pytest
import torch
from support.train_configs import small_config

from togethernet_ros.model import TogetherNet, TogetherNetConfig, build_model
from togethernet_ros.training.detection_loss import together_loss
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
from togethernet_ros.training.train_config import load_train_config
from togethernet_ros.training.trainer import train


def tiny_config(tmp_path, *overrides):
    """One epoch of one step: 2 images of 128², batch 2, narrow network."""
    one_step = ["train.batch_size=2", "train.epochs=1", "eval.interval=0"]
    return small_config(tmp_path, *one_step, *overrides)


def small_model() -> TogetherNet:
    torch.manual_seed(0)
    return build_model(config=TogetherNetConfig(num_classes=3, width=0.125))


def diverged_box_regressor() -> TogetherNet:
    """A model whose width outputs are far past exp()'s float32 range (t_w ≈ 100)."""
    model = small_model()
    with torch.no_grad():
        for reg_pred in model.head.reg_preds:
            reg_pred.bias[2] = 100.0
    return model


def test_overflowing_box_size_makes_the_loss_nan_not_only_its_gradient():
    model = diverged_box_regressor().train()
    output = model(torch.randn(2, 3, 128, 128))
    targets = [torch.tensor([[0.0, 40, 40, 30, 30]]), torch.tensor([[1.0, 80, 70, 20, 40]])]
    terms = together_loss(
        output.maps, output.dehazed, torch.zeros(2, 3, 128, 128), targets, model.strides, 3
    )
    # Before: IoU 0 gave a finite loss whose backward wrote NaN into every weight.
    assert torch.isnan(terms.total)


@pytest.mark.parametrize("amp", ["none", "fp16"])
def test_diverged_regressor_stops_the_run_before_any_nan_checkpoint(tmp_path, amp):
    data = SyntheticFogDataset(2, 128, 128, num_classes=3, seed=3)
    config = tiny_config(tmp_path, f"train.amp={amp}")
    # Before: the run "finished" and wrote a last.pt with NaN weights (none) or silently skipped
    # every step (fp16).
    # fp16 skips an overflowing step, but an epoch in which every step overflowed stops too.
    expected = r"loss became (nan in epoch 1|non-finite at every step of epoch 1) .* train\.lr"
    with pytest.raises(FloatingPointError, match=expected):
        train(config, data, model=diverged_box_regressor())
    assert not (tmp_path / "last.pt").exists()


def test_an_fp16_step_whose_loss_overflows_is_skipped_and_the_run_goes_on(tmp_path, monkeypatch):
    # Fault injection: the tenth step's loss overflows (as fp16 does on one unlucky batch),
    # after the GradScaler's first scale calibration (it skips a few steps from 2**16 anyway).
    # It used to end the whole run; YOLOX's GradScaler loop skips the step and lowers the scale.
    from togethernet_ros.training import trainer as trainer_module

    real_loss, calls = trainer_module.together_loss, []

    def overflowing_once(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(len(calls))
        if len(calls) == 10:
            terms.total = terms.total * float("inf")
        return terms

    monkeypatch.setattr(trainer_module, "together_loss", overflowing_once)
    data = SyntheticFogDataset(24, 128, 128, num_classes=3, seed=3)
    said: list[str] = []
    config = tiny_config(tmp_path, "train.amp=fp16")
    result = train(config, data, model=small_model(), log=said.append)
    assert len(calls) == 12 and (tmp_path / "last.pt").is_file()
    assert any("fp16 steps had non-finite gradients and were skipped" in line for line in said)
    assert all(math.isfinite(value) for value in result.history[0].values() if value is not None)


def test_non_finite_weights_are_never_validated_or_saved(tmp_path):
    # A NaN BN statistic (e.g. inherited from a broken checkpoint): training-mode BN ignores it,
    # so every loss stays finite, but the saved model would detect nothing in eval mode.
    model = small_model()
    with torch.no_grad():
        model.backbone.backbone.stem.conv.bn.running_var[0] = float("nan")
    data = SyntheticFogDataset(2, 128, 128, num_classes=3, seed=3)
    with pytest.raises(FloatingPointError, match=r"weights became non-finite in epoch 1 \(.*bn"):
        train(tiny_config(tmp_path, "eval.interval=1"), data, data, model=model)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def _many_objects(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 3, (count, 1), generator=generator).float()
    centres = torch.rand(count, 2, generator=generator) * 128
    sizes = torch.rand(count, 2, generator=generator) * 30 + 2
    return torch.cat([classes, centres, sizes], 1)


@pytest.mark.parametrize(
    "targets",
    [
        [torch.zeros(0, 5), torch.zeros(0, 5)],
        [torch.zeros(0, 5), torch.tensor([[1.0, 64, 64, 20, 20]])],
        [_many_objects(150, 1), _many_objects(3, 2)],
        [torch.tensor([[0.0, 10, 10, 0.5, 0.5], [1, 64, 64, 1.5, 1.9]]), torch.zeros(0, 5)],
        [torch.tensor([[0.0, 0.5, 0.5, 1, 1], [1, 127.5, 127.5, 1, 1], [2, 64, 64, 128, 128]])] * 2,
    ],
    ids=["no-objects", "one-image-empty", "150-objects", "sub-2px", "border"],
)
def test_unusual_label_sets_give_finite_loss_and_gradients(targets):
    model = small_model().train()
    output = model(torch.randn(2, 3, 128, 128))
    terms = together_loss(
        output.maps, output.dehazed, torch.randn(2, 3, 128, 128), targets, model.strides, 3
    )
    terms.total.backward()
    assert torch.isfinite(terms.total)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_exponent_floats_without_a_dot_are_numbers():
    # PyYAML reads 1e-3 as a string: `--set train.lr=1e-3` used to be rejected.
    config = load_train_config(None, ["train.lr=1e-3", "train.weight_decay=5E-4"])
    assert (config.train.lr, config.train.weight_decay) == (1e-3, 5e-4)
    assert load_train_config(None, ["data.root=1e3"]).data.root == "1e3"  # str stays str


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.batch_size=0", "eval.batch_size must be >= 1"),  # crashed after epoch 1
        ("data.workers=-1", "data.workers must be >= 0"),
        ("train.lr=0", "train.lr must be a finite number > 0"),
        ("train.lr=.nan", "train.lr must be a finite number > 0"),
        ("train.min_lr_ratio=-0.1", r"train.min_lr_ratio must be in \[0, 1\]"),
        ("train.ema_decay=1.5", r"train.ema_decay must be in \[0, 1\]"),
        # These used to stop the run with a traceback from torch or OpenCV, after the data scan.
        ("train.momentum=0", "train.momentum must be a finite number > 0 with train.nesterov"),
        ("train.momentum=-0.5", "train.momentum must be a finite number > 0"),
        ("model.input_size=-128", "model.input_size must be > 0, got -128"),
        ("model.input_size=0", "model.input_size must be > 0, got 0"),
        ("train.weight_decay=-1e-4", "train.weight_decay must be a finite number >= 0"),
        ("train.grad_clip=.inf", "train.grad_clip must be a finite number >= 0"),
        ("train.stop_after_epochs=0", "train.stop_after_epochs must be >= 1"),
        ("eval.conf_threshold=1.5", r"eval.conf_threshold must be in \[0, 1\]"),
        ("eval.interval=-1", "eval.interval must be >= 0"),
    ],
)
def test_out_of_range_values_are_rejected_before_training(override, message):
    with pytest.raises(ValueError, match=message):
        load_train_config(None, [override])


def test_momentum_zero_is_plain_sgd_without_nesterov():
    config = load_train_config(None, ["train.momentum=0", "train.nesterov=false"])
    assert config.train.momentum == 0.0
