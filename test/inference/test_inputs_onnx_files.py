"""ONNX files from elsewhere: changed after export (fixed batch, float16 I/O, copied metadata),
empty, a folder, or one file of the pair left from an export of other weights."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from togethernet_ros.cli import main
from togethernet_ros.inference.export import onnx_variant_paths, read_onnx_info
from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
from togethernet_ros.inference.onnx_providers import CPU, CUDA, TENSORRT, provider_chains

from .conftest import run_export_command, scene


def _edited(source: Path, target: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    proto = onnx.load(str(source))
    edit(proto)
    onnx.save(proto, str(target))
    return target


def _detection_only(onnx_pair: Path) -> Path:
    return onnx_variant_paths(onnx_pair)[1]


def _fix_batch(batch: int) -> Callable[[onnx.ModelProto], None]:
    """What `onnxsim --overwrite-input-shape` and similar tools leave: batch no longer dynamic."""

    def edit(proto: onnx.ModelProto) -> None:
        for value in [*proto.graph.input, *proto.graph.output]:
            dim = value.type.tensor_type.shape.dim[0]
            dim.ClearField("dim_param")
            dim.dim_value = batch

    return edit


def _float16_io(proto: onnx.ModelProto) -> None:
    """float16 input and outputs around the float32 graph (as onnxconverter-common leaves the
    interface with keep_io_types=False; its metadata is kept)."""
    graph = proto.graph
    renamed = {value.name: value.name + "_fp32" for value in [*graph.input, *graph.output]}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    image = graph.input[0]
    casts_in = [helper.make_node("Cast", [image.name], [renamed[image.name]], to=TensorProto.FLOAT)]
    casts_out = [
        helper.make_node("Cast", [renamed[out.name]], [out.name], to=TensorProto.FLOAT16)
        for out in graph.output
    ]
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16


def _set_metadata(key: str, value: str) -> Callable[[onnx.ModelProto], None]:
    def edit(proto: onnx.ModelProto) -> None:
        for entry in proto.metadata_props:
            if entry.key == f"togethernet.{key}":
                entry.value = value

    return edit


def _results(detector: OnnxRuntimeDetector, images: list[np.ndarray]) -> list:
    return [result.detections for result in detector.detect(images)]


@pytest.fixture(scope="module")
def reference(onnx_pair: Path) -> list:
    """Detections of the exported (dynamic batch, float32) detection-only file."""
    with OnnxRuntimeDetector(_detection_only(onnx_pair), conf_threshold=0.3) as detector:
        return _results(detector, _frames())


def _frames() -> list[np.ndarray]:
    return [scene(300, 500, seed=1), scene(256, 256, seed=2), scene(120, 90, seed=3)]


@pytest.mark.parametrize("batch", [1, 2])
def test_a_file_with_a_fixed_batch_runs_every_batch_size(tmp_path, onnx_pair, reference, batch):
    fixed = _edited(_detection_only(onnx_pair), tmp_path / "m.detect.onnx", _fix_batch(batch))
    # Three images: split into batches of `batch`, the last one padded (batch 2).
    with OnnxRuntimeDetector(fixed, conf_threshold=0.3, max_batch_size=4) as detector:
        found = _results(detector, _frames())
        single = _results(detector, _frames()[:1])
        assert detector.max_batch_size == batch
    assert read_onnx_info(fixed).signature.fixed_batch == batch
    assert sum(len(d) for d in reference) > 0
    for got, want in zip([*found, *single], [*reference, reference[0]], strict=True):
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)


def test_a_float16_file_takes_and_gives_float16(tmp_path, onnx_pair, reference):
    half = _edited(_detection_only(onnx_pair), tmp_path / "m.detect.onnx", _float16_io)
    with OnnxRuntimeDetector(half, conf_threshold=0.3) as detector:
        found = _results(detector, _frames())
    assert read_onnx_info(half).signature.input_type == "float16"
    # The normalised input rounded to float16 moves scores and boxes a little, no more.
    for got, want in zip(found, reference, strict=True):
        assert abs(len(got) - len(want)) <= 0.02 * len(want) + 1  # threshold crossings
        matched = [
            np.abs(got.boxes - box).max(axis=1).min() for box in want.boxes if len(got.boxes)
        ]
        assert np.median(matched) < 1.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set_metadata("input_size", "384x384"),
            r"input 'images' has shape \? x 3 x 256 x 256, but the metadata says "
            r"N x 3 x 384 x 384",
        ),
        (
            _set_metadata("class_names", '["person", "car"]'),
            r"output 'maps_s8' has shape \? x 10 x 32 x 32, but the metadata "
            r"\(2 classes, input 256x256\) needs N x 7 x 32 x 32",
        ),
        (_set_metadata("restore", "1"), r"the graph lacks the outputs \['dehazed'\]"),
    ],
)
def test_metadata_that_does_not_describe_the_graph_is_refused_by_name(
    tmp_path, onnx_pair, edit, message
):
    # e.g. metadata copied from another export onto a file, or another model's graph edited in.
    wrong = _edited(_detection_only(onnx_pair), tmp_path / "m.detect.onnx", edit)
    with pytest.raises(ValueError, match=message) as raised:
        read_onnx_info(wrong)
    assert str(wrong) in str(raised.value)
    with pytest.raises(ValueError, match=message):
        OnnxRuntimeDetector(wrong)


def test_an_empty_file_is_not_called_a_foreign_export(tmp_path):
    empty = tmp_path / "m.onnx"
    empty.write_bytes(b"")
    with pytest.raises(
        ValueError, match=rf"{empty} is not a readable ONNX model: it holds no graph"
    ):
        read_onnx_info(empty)


def test_a_folder_given_as_the_onnx_file_is_named_as_such(tmp_path, checkpoint_path, capsys):
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"ONNX path {folder} is a folder"):
        create_detector(checkpoint_path, backend="onnxruntime", onnx_path=folder)
    with pytest.raises(ValueError, match=rf"ONNX path {folder} is a folder"):
        OnnxRuntimeDetector(folder)
    source = tmp_path / "frame.png"
    cv2.imwrite(str(source), scene(64, 96))
    output = tmp_path / "out"
    common = ["--backend", "onnxruntime", "--onnx", str(tmp_path), "--device", "cpu"]
    args = ["predict", *common, "--source", str(source), "--output", str(output)]
    assert main([*args, "--allow-untrained"]) == 2
    assert f"ONNX path {tmp_path} is a folder" in capsys.readouterr().err
    assert not output.exists()


def test_a_pair_file_left_from_other_weights_is_refused(tmp_path, onnx_pair):
    # `togethernet export --variant restore` rewrote m.onnx; m.detect.onnx is an older export of
    # other weights. Detections (restore=False) would come from the old weights.
    restore_path, detect_path = onnx_variant_paths(onnx_pair)
    shutil.copy(restore_path, tmp_path / "m.onnx")
    _edited(detect_path, tmp_path / "m.detect.onnx", _set_metadata("weights_sha256", "0" * 64))
    with pytest.raises(ValueError, match="come from different exports") as raised:
        OnnxRuntimeDetector(tmp_path / "m.onnx")
    assert str(tmp_path / "m.onnx") in str(raised.value)
    assert str(tmp_path / "m.detect.onnx") in str(raised.value)
    assert "0000000000000000" in str(raised.value)
    # The same pair from one export runs.
    shutil.copy(detect_path, tmp_path / "m.detect.onnx")
    OnnxRuntimeDetector(tmp_path / "m.onnx").close()


def test_the_signature_of_our_own_export_is_float32_with_a_dynamic_batch(onnx_pair):
    for path in onnx_variant_paths(onnx_pair):
        signature = read_onnx_info(path).signature
        assert (signature.input_type, signature.fixed_batch) == ("float32", None)
        assert set(signature.output_types.values()) == {"float32"}
    assert "dehazed" in read_onnx_info(onnx_pair).signature.output_types


def test_exporting_one_variant_warns_about_a_stale_other_file(
    tmp_path, onnx_pair, checkpoint_path, caplog
):
    detect_path = _detection_only(onnx_pair)
    stale = _edited(
        detect_path, tmp_path / "m.detect.onnx", _set_metadata("weights_sha256", "f" * 64)
    )
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        run_export_command(
            checkpoint_path, tmp_path / "m.onnx", "--variant", "restore", "--no-verify"
        )
    warnings = [
        record.getMessage() for record in caplog.records if "not written by" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert f"{stale}, next to {tmp_path / 'm.onnx'}, was not written by this export" in warnings[0]
    assert "weights sha256" in warnings[0] and "ffffffffffffffff" in warnings[0]
    # A partner from the same weights and size is no reason to warn.
    caplog.clear()
    shutil.copy(detect_path, stale)
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        run_export_command(
            checkpoint_path, tmp_path / "m.onnx", "--variant", "restore", "--no-verify"
        )
    assert not [record for record in caplog.records if "not written by" in record.getMessage()]


def test_tensorrt_gets_no_batch_profile_for_a_file_with_a_fixed_batch():
    # A profile from batch 1 to max_batch_size names shapes a fixed-batch input cannot take.
    available = [TENSORRT, CUDA, CPU]
    dynamic = provider_chains("cuda", "fp16", Path("/c"), (256, 256), 4, available)[0][0][1]
    fixed = provider_chains("cuda", "fp16", Path("/c"), (256, 256), 2, available, fixed_batch=2)
    assert dynamic["trt_profile_min_shapes"] == "images:1x3x256x256"
    assert not [key for key in fixed[0][0][1] if key.startswith("trt_profile")]


def test_an_onnx_runtime_failure_while_running_is_a_runtime_error_naming_the_file(onnx_pair):
    # Its exceptions derive from Exception only: the CLI printed them as tracebacks.
    detector = OnnxRuntimeDetector(onnx_pair, device="cpu")
    wrong_channels = torch.zeros((1, 5, *detector.input_size))
    with pytest.raises(RuntimeError, match=rf"onnxruntime failed running {onnx_pair.name}"):
        detector._forward(wrong_channels, restore=True)
    detector.close()
