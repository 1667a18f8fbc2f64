"""Write small TF.js graph models (model.json + weights.bin) for converter tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np


class TfjsModelWriter:
    """Collects nodes and constants, then writes a TF.js graph model like tfjs-converter does."""

    def __init__(self) -> None:
        self.nodes: list[dict] = []
        self.weights: list[tuple[dict, bytes]] = []

    def const(self, name: str, value: np.ndarray, quantize_fp16: bool = False) -> str:
        value = np.asarray(value)
        if value.dtype.kind == "f":
            dtype, tf_type = "float32", "DT_FLOAT"
        else:
            dtype, tf_type = "int32", "DT_INT32"
        entry = {"name": name, "shape": list(value.shape), "dtype": dtype}
        if quantize_fp16 and dtype == "float32":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            data = value.astype("<f2").tobytes()
        else:
            data = value.astype("<f4" if dtype == "float32" else "<i4").tobytes()
        self.weights.append((entry, data))
        self.nodes.append({"name": name, "op": "Const", "attr": {"dtype": {"type": tf_type}}})
        return name

    def node(self, name: str, op: str, inputs: list[str], **attr) -> str:
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def write(self, directory: Path, input_shape: list[int], outputs: list[str]) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        placeholder = {
            "name": "input_1",
            "op": "Placeholder",
            "attr": {
                "shape": {"shape": {"dim": [{"size": str(s)} for s in input_shape]}},
                "dtype": {"type": "DT_FLOAT"},
            },
        }
        (directory / "weights.bin").write_bytes(b"".join(data for _, data in self.weights))
        spec = {
            "format": "graph-model",
            "modelTopology": {"node": [placeholder, *self.nodes]},
            "signature": {"outputs": {f"{name}:0": {"name": f"{name}:0"} for name in outputs}},
            "weightsManifest": [
                {"paths": ["weights.bin"], "weights": [entry for entry, _ in self.weights]}
            ],
        }
        path = directory / "model.json"
        path.write_text(json.dumps(spec))
        return path


def ints(*values: int) -> dict:
    """A TF ``list(int)`` attribute."""
    return {"list": {"i": [str(v) for v in values]}}


def text(value: str) -> dict:
    """A TF bytes attribute as TF.js stores it (base64)."""
    return {"s": base64.b64encode(value.encode()).decode()}
