"""ONNX export: ONNX Runtime equals PyTorch at two input sizes and two batch sizes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from togethernet_ros.inference.export import (
    export_onnx,
    onnx_variant_paths,
    read_onnx_info,
    verify_onnx,
)
from togethernet_ros.model import DEFAULT_CLASS_NAMES


def test_export_command_verifies_both_variants(exported):
    path, printed = exported
    lines = printed.splitlines()
    assert lines[0].startswith("restore ") and str(path) in lines[0]
    assert lines[2].startswith("detect ") and "model.detect.onnx" in lines[2]
    for verdict in (lines[1], lines[3]):
        assert "[OK]" in verdict
        worst = float(verdict.split("max |error|")[1].split()[0])
        assert worst < 1e-4


def test_onnx_runtime_equals_pytorch_at_256x256_batch_3(onnx_pair, informative_model):
    restore_path, _ = onnx_variant_paths(onnx_pair)
    errors = verify_onnx(informative_model, restore_path, batch_sizes=(3,))
    assert set(errors) == {"maps_s8", "maps_s16", "maps_s32", "dehazed"}
    assert max(errors[name] for name in ("maps_s8", "maps_s16", "maps_s32")) < 1e-4
    assert errors["dehazed"] < 2e-4


def test_onnx_runtime_equals_pytorch_at_rectangular_256x384(tmp_path, informative_model):
    path = export_onnx(
        informative_model,
        tmp_path / "wide.detect.onnx",
        (256, 384),
        restore=False,
        class_names=DEFAULT_CLASS_NAMES,
    )
    errors = verify_onnx(informative_model, path, batch_sizes=(1, 3))
    assert max(errors.values()) < 1e-4
    # The comparison itself is sensitive: a perturbed model is far outside that tolerance.
    perturbed = type(informative_model)(informative_model.config)
    perturbed.load_state_dict(informative_model.state_dict())
    with torch.no_grad():
        perturbed.head.cls_preds[0].bias.add_(0.01)
    assert max(verify_onnx(perturbed.eval(), path, batch_sizes=(1,)).values()) > 5e-3


def test_exported_files_describe_themselves(onnx_pair):
    restore_path, detect_path = onnx_variant_paths(onnx_pair)
    full, detect = read_onnx_info(restore_path), read_onnx_info(detect_path)
    assert full.restore and not detect.restore
    assert full.input_size == detect.input_size == (256, 256)
    assert full.class_names == DEFAULT_CLASS_NAMES and not full.untrained
    proto = onnx.load(str(detect_path), load_external_data=False)
    assert (
        max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    )
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch
    assert [output.name for output in proto.graph.output] == ["maps_s8", "maps_s16", "maps_s32"]
    # The detection-only graph really lacks the decoder (so skipping it saves its time).
    assert not any(node.op_type == "ConvTranspose" for node in proto.graph.node)
    full_proto = onnx.load(str(restore_path), load_external_data=False)
    assert any(node.op_type == "ConvTranspose" for node in full_proto.graph.node)


def test_variant_path_naming():
    full, detect = onnx_variant_paths("/x/model.onnx")
    assert (full.name, detect.name) == ("model.onnx", "model.detect.onnx")
    assert onnx_variant_paths("/x/model.detect.onnx") == (full, detect)
    with pytest.raises(ValueError, match=r"must end with \.onnx"):
        onnx_variant_paths("/x/model.pt")


def test_foreign_and_broken_files_are_rejected(tmp_path, informative_model):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        read_onnx_info(garbage)
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])), str(foreign))
    with pytest.raises(ValueError, match="togethernet export"):
        read_onnx_info(foreign)
    with pytest.raises(FileNotFoundError):
        read_onnx_info(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="multiples of 128"):
        export_onnx(
            informative_model,
            tmp_path / "a.onnx",
            (200, 256),
            restore=False,
            class_names=DEFAULT_CLASS_NAMES,
        )
    with pytest.raises(ValueError, match="opset"):
        export_onnx(
            informative_model,
            tmp_path / "a.onnx",
            256,
            restore=False,
            class_names=DEFAULT_CLASS_NAMES,
            opset=16,
        )


def test_export_leaves_the_callers_model_untouched(tmp_path, informative_model):
    before = {k: v.clone() for k, v in informative_model.state_dict().items()}
    assert not informative_model.training
    export_onnx(
        informative_model,
        tmp_path / "b.detect.onnx",
        256,
        restore=False,
        class_names=DEFAULT_CLASS_NAMES,
    )
    assert not informative_model.training
    for key, value in informative_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert np.isfinite(before["head.cls_preds.0.bias"].numpy()).all()


def test_export_defaults_to_the_input_size_the_checkpoint_records(tmp_path, informative_model):
    from togethernet_ros.cli import main
    from togethernet_ros.model.checkpoint import save_checkpoint

    weights = save_checkpoint(
        tmp_path / "trained_at_128x256.pt",
        informative_model,
        DEFAULT_CLASS_NAMES,
        metadata={"input_size": [128, 256]},
    )
    output = tmp_path / "m.onnx"
    command = ["export", "--weights", str(weights), "--output", str(output)]
    assert main([*command, "--variant", "detect", "--no-verify"]) == 0
    assert read_onnx_info(onnx_variant_paths(output)[1]).input_size == (128, 256)
