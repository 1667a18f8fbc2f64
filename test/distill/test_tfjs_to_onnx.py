"""The TF.js → ONNX converter on a hand-built graph, checked against PyTorch, and its errors."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from togethernet_ros.distill.tfjs_graph import TfjsModelError, read_tfjs_graph
from togethernet_ros.distill.tfjs_to_onnx import convert_tfjs_graph

from .tfjs_model_writer import TfjsModelWriter, ints, text


def _detector_like_graph(tmp_path, rng):
    """NCHW input → NHWC conv stack with every op the converter supports → two outputs."""
    writer = TfjsModelWriter()
    kernel = rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32)  # HWIO
    bias = rng.normal(0, 0.1, 4).astype(np.float32)
    strided = rng.normal(0, 0.3, (3, 3, 7, 6)).astype(np.float32)
    writer.const("perm_nhwc", np.array([0, 2, 3, 1]))
    writer.const("perm_nchw", np.array([0, 3, 1, 2]))
    writer.const("pads", np.array([[0, 0], [0, 0], [1, 1], [1, 1]]))  # NCHW, as onnx-tf emits
    writer.const("kernel", kernel, quantize_fp16=True)
    writer.const("bias", bias, quantize_fp16=True)
    writer.const("pool_pads", np.array([[0, 0], [0, 1], [0, 1], [0, 0]]))
    writer.const("minus_inf", np.array(-np.inf, np.float32), quantize_fp16=True)
    writer.const("size", np.array([8, 8]))
    writer.const("axis", np.array(3))
    writer.const("strided", strided)
    writer.const("split_sizes", np.array([2, 4]))
    writer.const("shape_head", np.array([1, 2, -1]))
    writer.const("shape_zero", np.zeros(3, np.int32))
    writer.const("perm_3d", np.array([0, 2, 1]))

    writer.node("pad", "Pad", ["input_1", "pads"])
    writer.node("to_nhwc", "Transpose", ["pad", "perm_nhwc"])
    conv_attrs = {"strides": ints(1, 1, 1, 1), "padding": text("VALID")}
    conv_attrs |= {"data_format": text("NHWC"), "dilations": ints(1, 1, 1, 1)}
    writer.node("conv", "Conv2D", ["to_nhwc", "kernel"], **conv_attrs)
    writer.node("conv_bias", "Add", ["conv", "bias"])
    writer.node("act", "LeakyRelu", ["conv_bias"], alpha={"f": 0.1})
    writer.node("pool_pad", "PadV2", ["act", "pool_pads", "minus_inf"])
    writer.node(
        "pool",
        "MaxPool",
        ["pool_pad"],
        ksize=ints(1, 3, 3, 1),
        strides=ints(1, 2, 2, 1),
        padding=text("VALID"),
        data_format=text("NHWC"),
    )
    writer.node("up", "ResizeBilinear", ["pool", "size"], half_pixel_centers={"b": True})
    writer.node("in_nhwc", "Transpose", ["input_1", "perm_nhwc"])
    writer.node("cat", "ConcatV2", ["up", "in_nhwc", "axis"])
    same = conv_attrs | {"strides": ints(1, 2, 2, 1), "padding": text("SAME")}
    writer.node("down", "Conv2D", ["cat", "strided"], **same)
    writer.node("split", "SplitV", ["down", "split_sizes", "axis"], num_split={"i": "2"})
    writer.node("score", "Sigmoid", ["split"])
    # Shape arithmetic on constants only: folded by the converter.
    writer.node("shape", "AddV2", ["shape_head", "shape_zero"])
    writer.node("score_nchw", "Transpose", ["score", "perm_nchw"])
    writer.node("flat", "Reshape", ["score_nchw", "shape"])
    writer.node("flat_t", "Transpose", ["flat", "perm_3d"])
    writer.node("Identity", "Identity", ["flat_t"])
    writer.node("Identity_1", "Identity", ["split:1"])
    path = writer.write(tmp_path / "tiny", [1, 3, 8, 8], ["Identity", "Identity_1"])
    return path, kernel, bias, strided


def _reference(x, kernel, bias, strided):
    """The same network in PyTorch (float16-rounded weights, as stored)."""
    kernel = torch.from_numpy(kernel.astype(np.float16).astype(np.float32))
    bias = torch.from_numpy(bias.astype(np.float16).astype(np.float32))
    inputs = torch.from_numpy(x)
    y = F.conv2d(F.pad(inputs, (1, 1, 1, 1)), kernel.permute(3, 2, 0, 1), bias)
    y = F.leaky_relu(y, 0.1)
    y = F.max_pool2d(F.pad(y, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    y = F.interpolate(y, size=(8, 8), mode="bilinear", align_corners=False)
    y = torch.cat([y, inputs], dim=1)
    # TF SAME with stride 2 on 8×8 and a 3×3 kernel pads 0 before, 1 after.
    y = F.conv2d(F.pad(y, (0, 1, 0, 1)), torch.from_numpy(strided).permute(3, 2, 0, 1), stride=2)
    score = torch.sigmoid(y[:, :2]).reshape(y.shape[0], 2, -1).permute(0, 2, 1)
    return score.numpy(), y[:, 2:].permute(0, 2, 3, 1).numpy()


def test_converted_graph_matches_pytorch_for_batch_1_and_3(tmp_path):
    rng = np.random.default_rng(0)
    path, kernel, bias, strided = _detector_like_graph(tmp_path, rng)
    model = convert_tfjs_graph(read_tfjs_graph(path))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["Identity", "Identity_1"]
    for batch in (1, 3):
        x = rng.normal(0, 1, (batch, 3, 8, 8)).astype(np.float32)
        score, rest = session.run(None, {"input_1": x})
        expected_score, expected_rest = _reference(x, kernel, bias, strided)
        assert score.shape == (batch, 16, 2)
        assert rest.shape == (batch, 4, 4, 4)
        np.testing.assert_allclose(score, expected_score, atol=1e-5)
        np.testing.assert_allclose(rest, expected_rest, atol=1e-5)
    # The conv bias is folded and the NHWC round trip around the conv cancels.
    ops = [node.op_type for node in model.graph.node]
    assert "Add" not in ops
    first_conv = next(node for node in model.graph.node if node.op_type == "Conv")
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    assert producer[first_conv.input[0]] == "Pad"
    assert len(first_conv.input) == 3  # data, weight, folded bias
    shapes = [
        [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
        for o in model.graph.output
    ]
    assert [shape[1:] for shape in shapes] == [[16, 2], [4, 4, 4]]


def test_unsupported_op_is_named(tmp_path):
    writer = TfjsModelWriter()
    writer.node("Identity", "Erf", ["input_1"])
    path = writer.write(tmp_path / "erf", [1, 3], ["Identity"])
    with pytest.raises(TfjsModelError, match=r"TF op Erf .*Identity"):
        convert_tfjs_graph(read_tfjs_graph(path))


def test_truncated_weights_and_foreign_json_are_reported(tmp_path):
    writer = TfjsModelWriter()
    writer.const("w", np.ones((4, 4), np.float32))
    writer.node("Identity", "Add", ["input_1", "w"])
    path = writer.write(tmp_path / "cut", [4, 4], ["Identity"])
    (path.parent / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(TfjsModelError, match="truncated"):
        read_tfjs_graph(path)
    other = tmp_path / "layers.json"
    other.write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(TfjsModelError, match=r"not a TF\.js graph model"):
        read_tfjs_graph(other)
    with pytest.raises(TfjsModelError, match="does not exist"):
        read_tfjs_graph(tmp_path / "missing.json")
