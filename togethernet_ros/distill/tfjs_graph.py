"""Read a TensorFlow.js graph model (model.json + weight shards) without TensorFlow.

model.json holds the TF GraphDef as JSON (``modelTopology.node``: name, op, input, attr) and a
``weightsManifest`` that lists, group by group, the tensors stored back to back in the binary
shards. Weights may be quantised (float16, or uint8/uint16 with an affine scale and minimum).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Bytes per stored element, keyed by manifest dtype (after quantisation).
_STORED_DTYPES = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("u1"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}
_TF_INT_TYPES = {"DT_INT32", "DT_INT64"}


class TfjsModelError(ValueError):
    """The TF.js model files are missing, malformed or use something this reader lacks."""


@dataclass
class TfjsNode:
    """One GraphDef node: inputs are tensor references ``name`` or ``name:k``."""

    name: str
    op: str
    inputs: list[str]
    attr: dict

    def attr_int_list(self, key: str) -> list[int]:
        """An ``attr {key: {list: {i: [...]}}}`` value as ints (empty when absent)."""
        return [int(v) for v in self.attr.get(key, {}).get("list", {}).get("i", [])]

    def attr_string(self, key: str, default: str = "") -> str:
        """A bytes attribute (stored base64 in JSON) decoded to str."""
        raw = self.attr.get(key, {}).get("s")
        return base64.b64decode(raw).decode() if raw is not None else default

    def attr_float(self, key: str, default: float) -> float:
        """A float attribute."""
        return float(self.attr.get(key, {}).get("f", default))

    def attr_bool(self, key: str, default: bool = False) -> bool:
        """A bool attribute."""
        return bool(self.attr.get(key, {}).get("b", default))


@dataclass
class TfjsGraph:
    """Nodes in file order, decoded constant tensors by node name, and the declared outputs."""

    nodes: list[TfjsNode]
    constants: dict[str, np.ndarray]
    input_shapes: dict[str, list[int]]
    output_names: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def _shard_path(relative: object, directory: Path, model_json: Path) -> Path:
    """The weight shard a manifest names, which must lie inside the model's folder.

    A manifest from elsewhere could otherwise name ``../../.ssh/id_rsa`` (or an absolute path,
    or a link out of the folder) and have that file read as weights, into a teacher ONNX file
    that distill then copies into the dataset it exports.
    """
    if not isinstance(relative, str) or not relative:
        raise TfjsModelError(f"{model_json}: weight shard path {relative!r} is not a file name")
    shard = directory / relative
    root = directory.resolve()
    if Path(relative).is_absolute() or not shard.resolve().is_relative_to(root):
        raise TfjsModelError(
            f"{model_json}: weight shard path {relative!r} points outside {root}; refusing to "
            "read it (shards must sit in the model's folder)"
        )
    return shard


def _decode_group(group: dict, directory: Path, model_json: Path) -> dict[str, np.ndarray]:
    paths = group.get("paths") or []
    blobs = []
    for relative in paths:
        shard = _shard_path(relative, directory, model_json)
        if not shard.is_file():
            raise TfjsModelError(f"weight shard {shard} listed in the manifest does not exist")
        blobs.append(shard.read_bytes())
    data = b"".join(blobs)
    offset = 0
    tensors = {}
    for entry in group["weights"]:
        shape = [int(s) for s in entry["shape"]]
        if any(size < 0 for size in shape):
            raise TfjsModelError(f"weight {entry['name']}: negative size in shape {shape}")
        count = math.prod(shape)  # Python ints: a claimed 2^32 × 2^32 cannot wrap around to 0
        quantization = entry.get("quantization")
        stored = quantization["dtype"] if quantization else entry["dtype"]
        if stored not in _STORED_DTYPES:
            raise TfjsModelError(f"weight {entry['name']}: unsupported stored dtype {stored!r}")
        dtype = _STORED_DTYPES[stored]
        size = count * dtype.itemsize
        if offset + size > len(data):
            raise TfjsModelError(
                f"weight {entry['name']} needs bytes {offset}..{offset + size} but the shards "
                f"{paths} hold only {len(data)} (truncated download?)"
            )
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += size
        if quantization and stored in ("uint8", "uint16"):
            values = values.astype(np.float32) * quantization["scale"] + quantization["min"]
        target = np.float32 if entry["dtype"] == "float32" else entry["dtype"]
        tensors[entry["name"]] = values.astype(target).reshape(shape)
    if offset != len(data):
        raise TfjsModelError(f"weight shards {paths}: {len(data) - offset} bytes left unused")
    return tensors


def read_tfjs_graph(model_json: str | Path) -> TfjsGraph:
    """Parse a TF.js graph model; weight shards are looked up next to ``model_json``."""
    model_json = Path(model_json)
    if not model_json.is_file():
        raise TfjsModelError(f"TF.js model file {model_json} does not exist")
    try:
        spec = json.loads(model_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TfjsModelError(f"{model_json} is not valid JSON: {error}") from error
    except RecursionError:  # "[[[[..." a few hundred KB deep: no model is nested like that
        raise TfjsModelError(f"{model_json} is nested too deeply to be a TF.js model") from None
    found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
    if found != "graph-model" or "modelTopology" not in spec:
        raise TfjsModelError(f"{model_json} is not a TF.js graph model (format {found!r})")
    weights: dict[str, np.ndarray] = {}
    for group in spec.get("weightsManifest", []):
        weights.update(_decode_group(group, model_json.parent, model_json))
    nodes, constants, input_shapes = [], {}, {}
    for raw in spec["modelTopology"].get("node", []):
        node = TfjsNode(raw["name"], raw["op"], list(raw.get("input", [])), raw.get("attr", {}))
        if node.op == "Const":
            if node.name not in weights:
                raise TfjsModelError(f"constant {node.name} has no entry in the weights manifest")
            value = weights[node.name]
            # TF.js stores int64 tensors as int32; restore the graph's declared width.
            declared = node.attr.get("dtype", {}).get("type")
            constants[node.name] = value.astype(np.int64) if declared in _TF_INT_TYPES else value
            continue
        if node.op == "Placeholder":
            dims = node.attr.get("shape", {}).get("shape", {}).get("dim", [])
            input_shapes[node.name] = [int(d.get("size", -1)) for d in dims]
        nodes.append(node)
    outputs = [name.split(":")[0] for name in (spec.get("signature", {}).get("outputs") or {})]
    metadata = {key: spec[key] for key in ("generatedBy", "convertedBy") if key in spec}
    return TfjsGraph(nodes, constants, input_shapes, sorted(outputs), metadata)
