"""The fast model (grid_sample DCN, reordered decoder tail) exports to ONNX opset 17."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from togethernet_ros.model import build_model
from togethernet_ros.model.checkpoint import load_state_dict_strict

from .reference_fill import SMALL_REFERENCE_PATH, reference_state_dict


class _FlatOutputs(torch.nn.Module):
    """ONNX graphs return flat tensors: (s8, s16, s32[, dehazed])."""

    def __init__(self, model: torch.nn.Module, restore: bool) -> None:
        super().__init__()
        self.model = model
        self.restore = restore

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps, dehazed = self.model(x, restore=self.restore)
        return (*maps, dehazed) if self.restore else tuple(maps)


@pytest.fixture(scope="module")
def reference_model() -> torch.nn.Module:
    model = build_model()
    load_state_dict_strict(model, reference_state_dict())
    return model.eval()


def test_onnx_export_matches_reference(tmp_path, reference_model):
    restore = True  # the detection-only graph is a subgraph of this one
    ref = np.load(SMALL_REFERENCE_PATH)
    path = tmp_path / "togethernet.onnx"
    torch.onnx.export(
        _FlatOutputs(reference_model, restore).eval(),  # a train-mode wrapper would leak train()
        (torch.from_numpy(ref["input"]),),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["images"],
        dynamic_axes={"images": {0: "batch"}},
    )
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    op_types = {node.op_type for node in graph.graph.node}
    assert "GridSample" in op_types  # the fast DCN, not gathers
    assert ("Tanh" in op_types) == restore

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = np.concatenate([ref["input"], ref["input"][:, :, ::-1].copy()])  # dynamic batch 2
    outputs = session.run(None, {"images": batch})
    names = ["out_s8", "out_s16", "out_s32", "dehaze"][: len(outputs)]
    assert len(outputs) == (4 if restore else 3)
    for name, value in zip(names, outputs, strict=True):
        atol = 2e-4 if name == "dehaze" else 1e-4
        np.testing.assert_allclose(value[:1], ref[name], rtol=1e-4, atol=atol, err_msg=name)
    with torch.no_grad():
        flipped = reference_model(torch.from_numpy(batch[1:]), restore=restore)
    np.testing.assert_allclose(outputs[0][1:], flipped.maps[0].numpy(), rtol=1e-4, atol=1e-4)
