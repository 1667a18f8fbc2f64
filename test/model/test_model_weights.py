"""The weights policy: refuse to run untrained unless allowed, then warn loudly."""

from __future__ import annotations

import logging

import pytest
import torch

from togethernet_ros.model import (
    DEFAULT_CLASS_NAMES,
    CheckpointError,
    TogetherNetConfig,
    UntrainedWeightsError,
    build_model,
    load_model_weights,
    save_checkpoint,
)


@pytest.mark.parametrize("weights", [None, "", "   "])
def test_missing_weights_are_refused_with_instructions(weights):
    with pytest.raises(UntrainedWeightsError) as info:
        load_model_weights(weights)
    message = str(info.value)
    assert "--weights" in message and "--allow-untrained" in message
    assert "allow_untrained_weights" in message


def test_allowed_untrained_model_is_seeded_and_warns(caplog):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        first = load_model_weights(None, allow_untrained=True)
    second = load_model_weights("", allow_untrained=True)
    assert torch.equal(before, torch.random.get_rng_state())  # caller's RNG untouched
    assert first.metadata["untrained"] is True
    assert first.class_names == DEFAULT_CLASS_NAMES
    assert not first.model.training
    warnings = [r for r in caplog.records if r.name == "togethernet_ros"]
    assert warnings and warnings[0].levelno == logging.WARNING
    assert "UNTRAINED" in warnings[0].getMessage() and "MEANINGLESS" in warnings[0].getMessage()
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key


def test_untrained_custom_classes():
    loaded = load_model_weights(None, allow_untrained=True, num_classes=2, class_names=["a", "b"])
    assert loaded.class_names == ("a", "b")
    assert loaded.model.head.cls_preds[0].out_channels == 2
    with pytest.raises(ValueError, match="class-count mismatch"):
        load_model_weights(None, allow_untrained=True, num_classes=3, class_names=["a"])


def test_checkpoint_is_loaded_and_class_count_checked(tmp_path):
    model = build_model(config=TogetherNetConfig(num_classes=3))
    path = save_checkpoint(tmp_path / "three.pt", model, ["x", "y", "z"], metadata={"epoch": 1})
    with pytest.raises(CheckpointError, match="has 3 classes but 5 were requested"):
        load_model_weights(path)
    loaded = load_model_weights(path, num_classes=None)
    assert loaded.class_names == ("x", "y", "z")
    assert loaded.metadata == {"epoch": 1}
    renamed = load_model_weights(str(path), num_classes=3, class_names=["p", "q", "r"])
    assert renamed.class_names == ("p", "q", "r")
    with pytest.raises(CheckpointError, match="2 class names given"):
        load_model_weights(path, num_classes=3, class_names=["p", "q"])


def test_weights_path_errors_surface(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model_weights(tmp_path / "absent.pt", allow_untrained=True)
