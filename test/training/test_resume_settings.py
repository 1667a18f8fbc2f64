"""Settings changed at resume take effect, as they do in a fresh run."""

import re

import torch
from support.train_configs import small_config

from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
from togethernet_ros.training.trainer import TRAINING_STATE_KEY, train


def test_optimizer_settings_given_at_resume_take_effect(tmp_path):
    # The resumed optimizer state carries the first run's hyper-parameters in its param
    # groups; the config of the resumed run must win (the lr already does, step by step).
    data = SyntheticFogDataset(4, 128, 128, num_classes=3, seed=3)
    common = ["train.epochs=2", "eval.interval=0"]
    train(small_config(tmp_path, *common, "train.stop_after_epochs=1"), data)
    last = tmp_path / "last.pt"
    changed = ["train.momentum=0.5", "train.weight_decay=0.001", "train.nesterov=false"]
    train(small_config(tmp_path, *common, *changed, f"resume={last}"), data)
    groups = torch.load(last, weights_only=False)[TRAINING_STATE_KEY]["optimizer"]["param_groups"]
    assert [group["momentum"] for group in groups] == [0.5, 0.5]
    assert [group["nesterov"] for group in groups] == [False, False]
    # Norm weights and biases stay free of decay; the decayed group takes the new value.
    assert [group["weight_decay"] for group in groups] == [0.0, 0.001]


def test_resuming_with_more_epochs_says_where_the_learning_rate_goes_on(tmp_path):
    # The cosine is recomputed over the new length: the finished run's low LR jumps back up.
    data = SyntheticFogDataset(4, 128, 128, num_classes=3, seed=3)
    common = ["eval.interval=0", "train.warmup_epochs=0", "train.flat_epochs=0"]
    train(small_config(tmp_path, *common, "train.epochs=2"), data)
    said: list[str] = []
    resume = f"resume={tmp_path / 'last.pt'}"
    resumed = small_config(
        tmp_path, *common, "train.epochs=20", "train.stop_after_epochs=1", resume
    )
    train(resumed, data, log=said.append)
    (message,) = [line for line in said if "train.epochs changed" in line]
    went_on, was = (float(value) for value in re.findall(r" at ([0-9.e+-]+\d)", message))
    # Near the end of the 2-epoch cosine, near its start in the 20-epoch one.
    assert message.startswith("train.epochs changed from 2 to 20") and went_on > 1.5 * was
