"""The trainer on a tiny synthetic foggy dataset: gradients, resume exactness, config errors."""

from pathlib import Path

import pytest
import torch
from support.train_configs import CLASSES, small_config

from togethernet_ros.model import build_model
from togethernet_ros.model.checkpoint import load_checkpoint
from togethernet_ros.training.detection_loss import together_loss
from togethernet_ros.training.optimizer_groups import split_decay_groups
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
from togethernet_ros.training.train_config import TrainConfig, load_train_config
from togethernet_ros.training.trainer import train


def test_default_config_is_togethernet_s_and_published_recipe():
    config = TrainConfig()
    assert (config.model.width, config.model.depth, config.model.input_size) == (0.5, 0.33, 640)
    assert config.loss.detection_weight == 0.2 and config.loss.restoration_weight == 0.8
    assert (config.train.momentum, config.train.weight_decay, config.train.nesterov) == (
        0.937,
        5e-4,
        True,
    )


def test_shipped_default_yaml_equals_the_built_in_defaults():
    root = Path(__file__).resolve().parents[2]
    assert load_train_config(root / "config" / "train_default.yaml") == TrainConfig()


def test_unknown_config_key_is_rejected_with_its_name():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) train\.learning_rate"):
        load_train_config(None, ["train.learning_rate=0.1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "config key train.epochs must be int, got 'abc'"),
        ("train.ema=1", "config key train.ema must be bool, got 1"),
        ("train.batch_size=true", "config key train.batch_size must be int, got True"),
        ("data.class_names=[car, 2]", r"data.class_names must be tuple\[str, ...\]"),
        ("output.dir=null", "config key output.dir must be str, got None"),
    ],
)
def test_a_value_of_the_wrong_type_is_rejected_with_its_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_train_config(None, [override])


def test_values_are_typed_as_declared():
    config = load_train_config(None, ["train.lr=1", "data.class_names=[car]", "data.root=null"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.data.class_names == ("car",) and config.data.root is None


def test_every_parameter_receives_gradient_and_is_optimised():
    torch.manual_seed(0)
    model = build_model(num_classes=3).train()  # TogetherNet-s
    decay, no_decay = split_decay_groups(model)
    in_proj = [p for n, p in model.named_parameters() if n.endswith("in_proj_weight")]
    assert in_proj and all(any(p is q for q in decay) for p in in_proj)
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    images = torch.randn(2, 3, 128, 128)
    # Objects of several sizes so that every pyramid level gets positives.
    targets = [
        torch.tensor([[0, 20, 20, 10, 12], [1, 70, 60, 40, 36], [2, 64, 64, 110, 100]]),
        torch.tensor([[2, 100, 30, 14, 10], [0, 40, 90, 50, 30], [1, 60, 60, 120, 120]]),
    ]
    output = model(images)
    terms = together_loss(
        output.maps, output.dehazed, torch.randn(2, 3, 128, 128), targets, model.strides, 3
    )
    terms.total.backward()
    without = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert without == []


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    data = SyntheticFogDataset(8, 128, 128, num_classes=3, seed=3)
    common = ["train.epochs=2", "train.seed=7", "eval.interval=0"]
    full = train(small_config(tmp_path / "full", *common), data)
    first = train(small_config(tmp_path / "part", *common, "train.stop_after_epochs=1"), data)
    assert first.epochs_run == 1 and len(first.step_losses) == 2
    assert first.step_losses == full.step_losses[:2]
    resumed = train(
        small_config(tmp_path / "part", *common, f"resume={tmp_path / 'part' / 'last.pt'}"), data
    )
    assert resumed.epochs_run == 1
    assert resumed.step_losses == full.step_losses[2:]  # bit-exact, not approximately
    # The checkpoints are self-describing and load through the model package.
    loaded = load_checkpoint(tmp_path / "part" / "last.pt")
    assert loaded.class_names == tuple(CLASSES) and loaded.config.width == 0.125
    assert loaded.metadata["epoch"] == 2
    full_weights = load_checkpoint(tmp_path / "full" / "last.pt").model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, full_weights[key]), key
    assert (tmp_path / "part" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_init_from_yolox_checkpoint_reports_loaded_and_missing(tmp_path):
    from togethernet_ros.model import TogetherNetConfig
    from togethernet_ros.training.pretrained_init import load_shared_weights

    torch.manual_seed(1)
    coco = build_model(config=TogetherNetConfig(num_classes=80, width=0.125))
    # A Megvii-style YOLOX file: {"model": ...}, no DTFE / SC / decoder, 80-class head.
    yolox_only = (
        "backbone.backbone.deconv",
        "backbone.backbone.swt1",
        "backbone.sc",
        "backbone.decoder",
    )
    state = {k: v for k, v in coco.state_dict().items() if not k.startswith(yolox_only)}
    torch.save({"model": state, "start_epoch": 300}, tmp_path / "yolox_s.pth")
    model = build_model(config=TogetherNetConfig(num_classes=3, width=0.125))
    report = load_shared_weights(model, tmp_path / "yolox_s.pth")
    assert any(k.startswith("head.cls_preds") for k in report.shape_mismatch)
    assert all(k.startswith(yolox_only) for k in report.not_in_checkpoint)
    assert report.not_in_checkpoint and not report.unused
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in report.loaded)
    assert "backbone.backbone.dark2.0.conv.weight" in report.loaded
    assert "shape mismatch" in report.summary()
