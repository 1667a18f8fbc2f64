"""ONNX export of TogetherNet: dynamic batch, fixed input size, with or without restoration.

ONNX Runtime evaluates every node of a graph even when only some outputs are requested, so
skipping the restoration decoder needs its own file. `export_variants` therefore writes a pair:
`NAME.onnx` (head maps + dehazed image) and `NAME.detect.onnx` (head maps only). Each file
carries its class names, input size, variant and an `untrained` flag as ONNX metadata, so a
deployment needs nothing but the ONNX files.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from togethernet_ros.evaluation.atomic_write import write_atomically, write_files_together
from togethernet_ros.inference.model_fusion import fuse_for_inference
from togethernet_ros.inference.onnx_signature import GraphSignature, read_graph_signature
from togethernet_ros.model import check_input_size
from togethernet_ros.model.checkpoint import check_class_names

ONNX_FORMAT = "togethernet_ros.onnx/1"
INPUT_NAME = "images"
MAP_OUTPUT_NAMES = ("maps_s8", "maps_s16", "maps_s32")
DEHAZED_OUTPUT_NAME = "dehazed"
DETECT_SUFFIX = ".detect.onnx"
MIN_OPSET = 17  # LayerNormalization (transformer block) needs opset 17


@dataclass
class OnnxModelInfo:
    """What the metadata of an exported file says about it."""

    path: Path
    input_size: tuple[int, int]
    restore: bool
    class_names: tuple[str, ...]
    untrained: bool
    metadata: dict[str, str] = field(default_factory=dict)
    # The graph's declared interface (float16 I/O, a fixed batch), checked against the metadata.
    signature: GraphSignature = field(default_factory=lambda: GraphSignature("float32", {}, None))


def onnx_variant_paths(path: str | Path) -> tuple[Path, Path]:
    """(with-restoration path, detection-only path) of the pair that `path` belongs to."""
    path = Path(path)
    if path.name.endswith(DETECT_SUFFIX):
        return path.with_name(path.name[: -len(DETECT_SUFFIX)] + ".onnx"), path
    if path.suffix != ".onnx":
        raise ValueError(f"ONNX model path must end with .onnx, got {path}")
    return path, path.with_name(path.name[: -len(".onnx")] + DETECT_SUFFIX)


class _ExportWrapper(nn.Module):
    """Flattens ModelOutput into a plain tuple of tensors for the exporter."""

    def __init__(self, model: nn.Module, restore: bool) -> None:
        super().__init__()
        self.model = model
        self.restore = restore

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(images, restore=self.restore)
        maps = tuple(output.maps)
        return (*maps, output.dehazed) if self.restore else maps


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: int | tuple[int, int],
    *,
    restore: bool,
    class_names: Sequence[str],
    opset: int = MIN_OPSET,
    metadata: dict[str, object] | None = None,
) -> Path:
    """Export one variant to `path`; batch is dynamic, the input size is fixed."""
    proto = _exported_proto(
        model, input_size, restore=restore, class_names=class_names, opset=opset, metadata=metadata
    )
    # Atomic: an interrupted run, or two processes exporting into one cache at once, must never
    # leave a half-written file where a reader (the export cache) takes it for a whole one.
    return write_atomically(path, lambda handle: handle.write(proto.SerializeToString()))


def _exported_proto(
    model: nn.Module,
    input_size: int | tuple[int, int],
    *,
    restore: bool,
    class_names: Sequence[str],
    opset: int,
    metadata: dict[str, object] | None,
) -> onnx.ModelProto:
    input_h, input_w = check_input_size(input_size)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}")
    # Export a private fp32 CPU copy: the tracer toggles train/eval on what it is given. Its
    # modules in fused form: ~70 fewer nodes, each a kernel launch on ONNX Runtime's GPU EPs.
    private = copy.deepcopy(model).float().cpu().eval()
    fuse_for_inference(private)
    wrapper = _ExportWrapper(private, restore).eval()
    output_names = [*MAP_OUTPUT_NAMES, *([DEHAZED_OUTPUT_NAME] if restore else [])]
    # Batch 2 when tracing so that no reshape can silently specialise on batch 1.
    example = torch.zeros(2, 3, input_h, input_w)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about Python-side shape checks
        torch.onnx.export(
            wrapper,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *output_names]},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    properties = {
        "format": ONNX_FORMAT,
        "input_size": f"{input_h}x{input_w}",
        "restore": "1" if restore else "0",
        "class_names": json.dumps(list(class_names)),
        "untrained": "0",
        **{key: str(value) for key, value in (metadata or {}).items()},
    }
    for key, value in properties.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"togethernet.{key}", value
    proto.doc_string = "TogetherNet (joint dehazing + YOLOX detection) exported by togethernet_ros"
    return proto


def export_variants(
    model: nn.Module,
    path: str | Path,
    input_size: int | tuple[int, int],
    *,
    class_names: Sequence[str],
    variants: Sequence[str] = ("restore", "detect"),
    opset: int = MIN_OPSET,
    metadata: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Export the with-restoration ("restore") and/or detection-only ("detect") files."""
    unknown = set(variants) - {"restore", "detect"}
    if unknown or not variants:
        raise ValueError(
            f"variants must be a non-empty subset of ('restore', 'detect'), got {variants}"
        )
    restore_path, detect_path = onnx_variant_paths(path)
    written = {}
    files = {}
    for variant in variants:
        target = restore_path if variant == "restore" else detect_path
        proto = _exported_proto(
            model,
            input_size,
            restore=variant == "restore",
            class_names=class_names,
            opset=opset,
            metadata=metadata,
        )
        written[variant] = target
        files[target] = proto.SerializeToString()
    write_files_together(files)
    return written


def read_onnx_info(path: str | Path) -> OnnxModelInfo:
    """Read our metadata from an exported file (without loading the weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and friends for non-ONNX files
        raise ValueError(f"{path} is not a readable ONNX model: {error}") from error
    if not proto.HasField("graph"):
        # An empty file, or one cut short before its graph, parses as an empty model.
        raise ValueError(
            f"{path} is not a readable ONNX model: it holds no graph (empty or cut short, "
            f"{path.stat().st_size} bytes)"
        )
    properties = {
        entry.key.removeprefix("togethernet."): entry.value
        for entry in proto.metadata_props
        if entry.key.startswith("togethernet.")
    }
    if properties.get("format") != ONNX_FORMAT:
        raise ValueError(
            f"{path} was not exported by `togethernet export` (metadata format "
            f"{properties.get('format')!r}, expected {ONNX_FORMAT!r})"
        )
    try:
        height, width = (int(v) for v in properties["input_size"].split("x"))
        class_names = check_class_names(json.loads(properties["class_names"]), "class_names")
        restore = {"1": True, "0": False}[properties["restore"]]
    except (KeyError, ValueError) as error:  # CheckpointError is a ValueError
        raise ValueError(f"{path} has broken togethernet metadata: {error}") from error
    signature = read_graph_signature(
        path,
        proto.graph,
        input_name=INPUT_NAME,
        output_names=[*MAP_OUTPUT_NAMES, *([DEHAZED_OUTPUT_NAME] if restore else [])],
        input_size=(height, width),
        num_classes=len(class_names),
    )
    return OnnxModelInfo(
        path=path,
        input_size=(height, width),
        restore=restore,
        class_names=class_names,
        untrained=properties.get("untrained", "0") in ("1", "True", "true"),
        metadata=properties,
        signature=signature,
    )


def verify_onnx(
    model: nn.Module, path: str | Path, batch_sizes: Sequence[int] = (1, 2), seed: int = 0
) -> dict[str, float]:
    """Run the file in ONNX Runtime (CPU) and PyTorch on the same random inputs.

    Returns the max absolute difference per output name over all batch sizes.
    """
    import onnxruntime as ort

    info = read_onnx_info(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    reference_model = copy.deepcopy(model).float().cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    errors = dict.fromkeys(names, 0.0)
    for batch_size in batch_sizes:
        images = torch.randn(batch_size, 3, *info.input_size, generator=generator)
        produced = session.run(names, {INPUT_NAME: images.numpy()})
        with torch.inference_mode():
            output = reference_model(images, restore=info.restore)
        expected = [*output.maps, *([output.dehazed] if info.restore else [])]
        for name, got, want in zip(names, produced, expected, strict=True):
            if got.shape != tuple(want.shape):
                raise ValueError(
                    f"{path}: output {name} has shape {got.shape}, expected {tuple(want.shape)}"
                )
            errors[name] = max(errors[name], float(np.abs(got - want.numpy()).max()))
    return errors
