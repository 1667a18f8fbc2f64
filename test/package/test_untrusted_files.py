"""Files from strangers (checkpoints, TF.js teachers, configs, detections) refused cleanly.

Each test crafts a malicious file and checks that loading it ends in one clear error that names
the file and the problem, and that it does no harm first: no decompression bomb expanded, no file
outside the model's folder read, no traceback or gigabyte-long error message.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from togethernet_ros.cli import main
from togethernet_ros.distill.tfjs_graph import TfjsModelError, read_tfjs_graph
from togethernet_ros.distill.tfjs_to_onnx import convert_tfjs_graph
from togethernet_ros.evaluation.detection_files import load_detections
from togethernet_ros.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_file
from togethernet_ros.training.train_config import apply_overrides, load_train_config

# --- checkpoints ---------------------------------------------------------------------------


def _save_deflated(path: Path, state: dict) -> Path:
    """``torch.save`` output with every zip record re-compressed (deflate), as a bomb is made."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source,
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
    return path


def test_deflated_checkpoint_bomb_is_refused_before_torch_expands_it(tmp_path):
    # 16 MiB of zeros deflate to ~16 KiB; the same trick turns 40 MB into 40 GB.
    weight = torch.zeros(4 << 20)
    bomb = _save_deflated(tmp_path / "weights.pt", {"head.cls_preds.0.weight": weight})
    del weight
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(bomb)
    message = str(caught.value)
    assert str(bomb) in message and "decompression bomb" in message
    assert "16.0 MiB" in message and "\n" not in message


def test_compressed_checkpoint_of_real_weights_and_plain_ones_still_load(tmp_path):
    # Deflate barely shrinks trained float weights: such a file is no bomb and must still load.
    weights = {"w": torch.randn(64, 64, generator=torch.Generator().manual_seed(0))}
    packed = _save_deflated(tmp_path / "packed.pt", weights)
    assert torch.equal(read_checkpoint_file(packed)["w"], weights["w"])
    plain = tmp_path / "plain.pt"
    torch.save(weights, plain)
    assert torch.equal(read_checkpoint_file(plain)["w"], weights["w"])


# --- TF.js teacher models ------------------------------------------------------------------


def _write_tfjs_model(folder: Path, shard_path: str) -> Path:
    """A TF.js graph model whose one constant (4 float32) is read from ``shard_path``."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "format": "graph-model",
        "modelTopology": {
            "node": [{"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}}]
        },
        "weightsManifest": [
            {"paths": [shard_path], "weights": [{"name": "w", "shape": [4], "dtype": "float32"}]}
        ],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside the model folder, exactly one shard long (as a targeted attack needs)."""
    path = tmp_path / "secret.key"
    path.write_bytes(np.arange(4, dtype="<f4").tobytes())
    return path


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_tfjs_manifest_cannot_read_files_outside_the_model_folder(tmp_path, secret, how):
    folder = tmp_path / "downloads" / "teacher"
    if how == "dot-dot":
        shard = "../../secret.key"
    elif how == "absolute":
        shard = str(secret)
    else:
        folder.mkdir(parents=True)
        os.symlink(secret, folder / "weights.bin")
        shard = "weights.bin"
    model_json = _write_tfjs_model(folder, shard)
    with pytest.raises(TfjsModelError) as caught:
        read_tfjs_graph(model_json)
    message = str(caught.value)
    assert str(model_json) in message and "points outside" in message and repr(shard) in message


def test_tfjs_shards_in_the_model_folder_and_its_subfolders_still_load(tmp_path):
    folder = tmp_path / "teacher"
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "group1.bin").write_bytes(np.arange(4, dtype="<f4").tobytes())
    graph = read_tfjs_graph(_write_tfjs_model(folder, "shards/./group1.bin"))
    np.testing.assert_array_equal(graph.constants["w"], np.arange(4, dtype=np.float32))


def _write_folding_model(folder: Path, constants: dict[str, np.ndarray], node: dict) -> Path:
    """A TF.js graph of int32/float32 constants and one node computed from them."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = {name: np.asarray(value) for name, value in constants.items()}
    kinds = {
        name: "float32" if value.dtype.kind == "f" else "int32" for name, value in stored.items()
    }
    shard = b"".join(
        value.astype(f"<{kinds[name][0]}4").tobytes() for name, value in stored.items()
    )
    (folder / "weights.bin").write_bytes(shard)
    tf_types = {"float32": "DT_FLOAT", "int32": "DT_INT32"}
    consts = [
        {"name": name, "op": "Const", "attr": {"dtype": {"type": tf_types[kinds[name]]}}}
        for name in stored
    ]
    manifest = [
        {"name": name, "shape": list(value.shape), "dtype": kinds[name]}
        for name, value in stored.items()
    ]
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": [*consts, node]},
        "weightsManifest": [{"paths": ["weights.bin"], "weights": manifest}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(spec))
    return path


def test_tfjs_constant_folding_refuses_gigabytes_from_a_few_bytes(tmp_path):
    # 4097² values: just over the 2^24 cap, and harmless (67 MB) even where it is not refused.
    side = 4097
    sparse = _write_folding_model(
        tmp_path / "sparse",
        {
            "indices": np.zeros((1, 2), np.int32),
            "shape": np.array([side, side], np.int32),
            "values": np.ones(1, np.float32),
            "default": np.zeros((), np.float32),
        },
        {
            "name": "dense",
            "op": "SparseToDense",
            "input": ["indices", "shape", "values", "default"],
        },
    )
    with pytest.raises(TfjsModelError, match=rf"node dense \(SparseToDense\).*\[{side}, {side}\]"):
        convert_tfjs_graph(read_tfjs_graph(sparse))
    broadcast = _write_folding_model(
        tmp_path / "broadcast",
        {"column": np.zeros((side, 1), np.float32), "row": np.zeros((1, side), np.float32)},
        {"name": "grid", "op": "AddV2", "input": ["column", "row"]},
    )
    with pytest.raises(TfjsModelError, match=r"node grid \(AddV2\) would fold"):
        convert_tfjs_graph(read_tfjs_graph(broadcast))


@pytest.mark.parametrize(
    ("shape", "stored"), [([-2, -2], 16), ([2**32, 2**32], 0)], ids=["negative", "wrapping"]
)
def test_tfjs_manifest_shapes_that_cannot_be_real_are_model_errors(tmp_path, shape, stored):
    # Each shard holds what numpy's wrong count wants: (-2)·(-2) = 4 floats, 2^64 wrapped to 0.
    path = _write_tfjs_model(tmp_path / "teacher", "weights.bin")
    (tmp_path / "teacher" / "weights.bin").write_bytes(bytes(stored))
    spec = json.loads(path.read_text())
    spec["weightsManifest"][0]["weights"][0]["shape"] = shape
    path.write_text(json.dumps(spec))
    with pytest.raises(TfjsModelError, match=r"^weight w[: ]"):
        read_tfjs_graph(path)


def test_tfjs_model_json_nesting_bomb_is_a_model_error(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TfjsModelError, match="nested too deeply"):
        read_tfjs_graph(path)
    path.write_text("[]")
    with pytest.raises(TfjsModelError, match=r"not a TF\.js graph model"):
        read_tfjs_graph(path)


# --- detections files ----------------------------------------------------------------------


def test_detections_json_nesting_bomb_is_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "detections.json"
    path.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested too deeply") as caught:
        load_detections(path)
    assert str(path) in str(caught.value)


# --- training configs ----------------------------------------------------------------------

# Six lines of YAML aliases nest a million strings by reference; three more make a billion.
_ALIAS_BOMB = """\
train:
  epochs:
    - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    - &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    - &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    - &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    - &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    - &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


def test_training_config_alias_bomb_gives_a_short_error(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(_ALIAS_BOMB)
    with pytest.raises(ValueError, match=r"config key train\.epochs must be int") as caught:
        load_train_config(path)
    # The full repr is 8 MB here (and 8 GB with three more lines): never build it.
    assert len(str(caught.value)) < 500


def test_training_config_with_python_tag_is_one_error_line_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "train.yaml"
    path.write_text(f'train:\n  epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ValueError) as caught:
        load_train_config(path)
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)
    assert "python/object/apply:os.system" in str(caught.value)
    assert main(["train", "--config", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("train: training config") and "\n" not in error
    assert not marker.exists()


def test_training_config_that_is_not_yaml_or_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("train: {epochs: [\n")
    with pytest.raises(ValueError, match=r"train\.yaml is not valid YAML \(line 2"):
        load_train_config(path)
    path.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    with pytest.raises(ValueError, match=r"train\.yaml is not UTF-8 text"):
        load_train_config(path)
    path.write_text("train:" + " [" * 50_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_train_config(path)


def test_training_config_non_string_keys_are_named_not_crashed_on(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("train:\n  1: 2\n  epochs: 3\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) train\.1;"):
        load_train_config(path)


def test_override_that_is_not_yaml_names_the_override():
    with pytest.raises(
        ValueError, match=r"^override 'train\.epochs=\[': value is not valid YAML"
    ) as caught:
        apply_overrides({}, ["train.epochs=["])
    assert "(line 1: " in str(caught.value) and "\n" not in str(caught.value)
