"""Checkpoint round trips (ours and upstream layouts) and every refusal, with real files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from togethernet_ros.model import (
    DEFAULT_CLASS_NAMES,
    CheckpointError,
    TogetherNetConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from togethernet_ros.model.checkpoint import CHECKPOINT_FORMAT


@pytest.fixture(scope="module")
def trained_like() -> torch.nn.Module:
    """A model with non-default values everywhere (BN statistics included)."""
    torch.manual_seed(11)
    model = build_model()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.01)
            else:
                tensor.fill_(7)
    return model.eval()


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_own_format_round_trip(tmp_path, trained_like):
    path = save_checkpoint(
        tmp_path / "sub" / "best.pt",
        trained_like,
        DEFAULT_CLASS_NAMES,
        metadata={"epoch": 42, "map50": 0.859},
        extra={"optimizer": {"lr": 0.01}},
    )
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    assert raw["config"] == trained_like.config.to_dict()
    loaded = load_checkpoint(path)
    _assert_same_weights(loaded.model, trained_like)
    assert loaded.class_names == DEFAULT_CLASS_NAMES
    assert loaded.config == trained_like.config
    assert loaded.metadata == {"epoch": 42, "map50": 0.859}
    assert loaded.raw["optimizer"] == {"lr": 0.01}
    assert not loaded.model.training
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(loaded.model(x).maps, trained_like(x).maps, strict=True):
            assert torch.equal(a, b)
    assert not list(tmp_path.glob("sub/.*tmp"))  # atomic write left no temp file


def test_own_format_keeps_custom_classes(tmp_path):
    model = build_model(config=TogetherNetConfig(num_classes=2))
    path = save_checkpoint(tmp_path / "two.pt", model, ["boat", "buoy"])
    loaded = load_checkpoint(path)
    assert loaded.class_names == ("boat", "buoy")
    assert loaded.model.head.cls_preds[2].out_channels == 2


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"model": sd, "epoch": 3},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "module-prefix", "model-wrapper", "state_dict-wrapper"],
)
def test_upstream_layouts_load_strictly(tmp_path, trained_like, wrap):
    path = tmp_path / "upstream.pth"
    torch.save(wrap(trained_like.state_dict()), path)
    loaded = load_checkpoint(path)
    _assert_same_weights(loaded.model, trained_like)
    assert loaded.class_names == DEFAULT_CLASS_NAMES
    assert loaded.metadata["source"] == "upstream"


def test_upstream_without_batch_counters_loads(tmp_path, trained_like):
    state = {
        k: v for k, v in trained_like.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    torch.save(state, tmp_path / "no_counters.pth")
    loaded = load_checkpoint(tmp_path / "no_counters.pth")
    key = "head.stems.0.bn.running_var"
    assert torch.equal(loaded.model.state_dict()[key], trained_like.state_dict()[key])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    "content",
    [b"", os.urandom(4096), b"this is a text file, not weights\n"],
    ids=["empty", "random-bytes", "text"],
)
def test_garbage_files(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"empty|not a readable PyTorch checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path, trained_like):
    good = tmp_path / "good.pt"
    save_checkpoint(good, trained_like, DEFAULT_CLASS_NAMES)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(cut)


class _Exploit:
    """Pickles to a call that would create a marker file when unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_rejected_not_executed(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(
            {"head.cls_preds.0.weight": torch.zeros(5, 128, 1, 1), "x": _Exploit(marker)}, path
        )
    else:
        with path.open("wb") as handle:
            pickle.dump({"x": _Exploit(marker)}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_checkpoint(path)
    assert "GLOBAL posix.system" in str(info.value)  # names the blocked callable
    assert not marker.exists()


def test_not_a_state_dict(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="holds a Tensor"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="without model weights"):
        load_checkpoint(tmp_path / "meta.pt")
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other_net.pt")
    with pytest.raises(CheckpointError, match="not a TogetherNet checkpoint"):
        load_checkpoint(tmp_path / "other_net.pt")


def test_shape_mismatch_names_key_and_both_shapes(tmp_path, trained_like):
    state = dict(trained_like.state_dict())
    key = "backbone.backbone.dark3.0.conv.weight"
    state[key] = torch.zeros(128, 64, 1, 1)
    torch.save(state, tmp_path / "reshaped.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "reshaped.pth")
    message = str(info.value)
    assert key in message
    assert "(128, 64, 1, 1)" in message and "(128, 64, 3, 3)" in message


def test_unexpected_and_missing_keys_are_refused(tmp_path, trained_like):
    state = dict(trained_like.state_dict())
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected key.*backbone\.extra\.weight"):
        load_checkpoint(tmp_path / "extra.pth")
    state = dict(trained_like.state_dict())
    del state["backbone.sc2.conv3.bias"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"1 missing key.*backbone\.sc2\.conv3\.bias"):
        load_checkpoint(tmp_path / "missing.pth")


def test_class_count_mismatch_inside_own_format(tmp_path, trained_like):
    path = save_checkpoint(tmp_path / "ok.pt", trained_like, DEFAULT_CLASS_NAMES)
    raw = torch.load(path, weights_only=True)
    raw["class_names"] = ["person", "car"]
    torch.save(raw, tmp_path / "names.pt")
    with pytest.raises(CheckpointError, match="class-count mismatch: 2 class names"):
        load_checkpoint(tmp_path / "names.pt")
    raw = torch.load(path, weights_only=True)
    raw["config"]["num_classes"] = 3
    raw["class_names"] = ["a", "b", "c"]
    torch.save(raw, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="head weights predict 5 classes"):
        load_checkpoint(tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="class-count mismatch"):
        save_checkpoint(tmp_path / "x.pt", trained_like, ["only-one"])


def test_unsupported_format_and_reserved_extra(tmp_path, trained_like):
    path = save_checkpoint(tmp_path / "ok.pt", trained_like, DEFAULT_CLASS_NAMES)
    raw = torch.load(path, weights_only=True)
    raw["format"] = "togethernet_ros.checkpoint/9"
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "y.pt", trained_like, DEFAULT_CLASS_NAMES, extra={"config": 1})


def test_metadata_must_stay_weights_only_safe(tmp_path, trained_like):
    with pytest.raises(CheckpointError, match=r"metadata\['run'\]\['dir'\] is a PosixPath"):
        save_checkpoint(
            tmp_path / "m.pt",
            trained_like,
            DEFAULT_CLASS_NAMES,
            metadata={"run": {"dir": tmp_path}},
        )
    assert not (tmp_path / "m.pt").exists()
