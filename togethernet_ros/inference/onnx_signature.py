"""The inputs and outputs an ONNX graph declares, checked against what its metadata promises.

Our metadata says input size, classes and variant, but a file passed around may have been
changed after `togethernet export` without touching it: batch fixed by a simplifier
(onnxsim --overwrite-input-shape, TensorRT-oriented tools), converted to float16 by
onnxconverter-common (which keeps metadata), or had its metadata copied from another file.
Without these checks such files fail at the first batch with an ONNX Runtime shape or type
error deep inside inference, or run with the wrong number of classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from togethernet_ros.inference.detector_base import STRIDES

# ONNX element types an input or output may have; anything else (int8 I/O, doubles) is refused.
FLOAT_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


@dataclass(frozen=True)
class GraphSignature:
    """What the graph's interface fixes: element types and a fixed batch size, if any."""

    input_type: str  # "float32" or "float16"
    output_types: dict[str, str]
    fixed_batch: int | None  # None: the batch dimension is dynamic


def _dims(value: onnx.ValueInfoProto, rank: int) -> list[int | None]:
    """Declared dimensions; None where a dimension is symbolic or unset, or for all ``rank``
    where the graph declares no shape (valid ONNX: the shape is left to the runtime)."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return [None] * rank
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]


def _element_type(path: Path, value: onnx.ValueInfoProto, role: str) -> str:
    elem_type = value.type.tensor_type.elem_type
    if elem_type not in FLOAT_TYPES:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type else "unset"
        raise ValueError(
            f"{path}: {role} {value.name!r} has element type {name}; only float32 and float16 "
            "inputs and outputs can be run"
        )
    return FLOAT_TYPES[elem_type]


def read_graph_signature(
    path: Path,
    graph: onnx.GraphProto,
    *,
    input_name: str,
    output_names: list[str],
    input_size: tuple[int, int],
    num_classes: int,
) -> GraphSignature:
    """Check that ``graph`` takes and returns what the metadata says; ValueError naming the file.

    ``output_names``: the three head maps (strides 8/16/32), then the dehazed output if any.
    Symbolic dimensions are accepted; fixed ones must agree with the metadata.
    """
    inputs = {value.name: value for value in graph.input}
    outputs = {value.name: value for value in graph.output}
    if input_name not in inputs:
        raise ValueError(
            f"{path}: the graph has no input {input_name!r} (inputs {sorted(inputs)}); it is "
            "not the graph its togethernet metadata describes"
        )
    missing = [name for name in output_names if name not in outputs]
    if missing:
        raise ValueError(
            f"{path}: the graph lacks the outputs {missing} (it has {sorted(outputs)}); it is "
            "not the graph its togethernet metadata describes"
        )
    height, width = input_size
    image = inputs[input_name]
    input_dims = _dims(image, 4)
    if len(input_dims) != 4 or any(
        got is not None and got != want
        for got, want in zip(input_dims[1:], (3, height, width), strict=True)
    ):
        raise ValueError(
            f"{path}: input {input_name!r} has shape {_shape_text(input_dims)}, but the metadata "
            f"says N x 3 x {height} x {width}; re-export it with `togethernet export`"
        )
    expected = {
        name: (5 + num_classes, height // stride, width // stride)
        for name, stride in zip(output_names[:3], STRIDES, strict=True)
    }
    if len(output_names) > 3:
        expected[output_names[3]] = (3, height, width)
    batches = {input_dims[0]}
    for name, want in expected.items():
        dims = _dims(outputs[name], 4)
        if len(dims) != 4 or any(
            got is not None and got != wanted for got, wanted in zip(dims[1:], want, strict=True)
        ):
            raise ValueError(
                f"{path}: output {name!r} has shape {_shape_text(dims)}, but the metadata "
                f"({num_classes} classes, input {height}x{width}) needs N x "
                f"{' x '.join(str(v) for v in want)}; the metadata belongs to another model"
            )
        batches.add(dims[0])
    fixed = {batch for batch in batches if batch is not None}
    if len(fixed) > 1:
        raise ValueError(f"{path}: input and outputs declare different batch sizes {fixed}")
    return GraphSignature(
        input_type=_element_type(path, image, "input"),
        output_types={name: _element_type(path, outputs[name], "output") for name in expected},
        fixed_batch=next(iter(fixed)) if fixed else None,
    )


def _shape_text(dims: list[int | None]) -> str:
    return " x ".join("?" if dim is None else str(dim) for dim in dims) or "(none)"
