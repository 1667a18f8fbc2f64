"""Static int8 quantization of an exported file for ONNX Runtime on the CPU.

The convolutions (nearly all of TogetherNet's arithmetic) get int8 weights (per output channel)
and uint8 activations whose ranges are calibrated on real frames; everything else (the
deformable sampling, the transformer's attention and normalisation, resizes) stays float32.
The result is a QDQ-format ONNX file that ONNX Runtime's CPU provider runs with integer
kernels (VNNI where the CPU has it). It keeps the source file's metadata, so every entry point
that takes an exported file (`predict --onnx`, the node's `onnx_path`) takes it unchanged.

Calibration frames should look like deployment: with `fog_betas` every frame is also fogged at
those densities (the project's fog synthesis), so the activation ranges cover clear and dense
fog alike.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch

from togethernet_ros.evaluation.atomic_write import temporary_path, write_atomically
from togethernet_ros.inference.detector_base import STRIDES
from togethernet_ros.inference.export import (
    DETECT_SUFFIX,
    INPUT_NAME,
    MAP_OUTPUT_NAMES,
    read_onnx_info,
)
from togethernet_ros.inference.media import MediaSource
from togethernet_ros.tracking.box_geometry import pairwise_iou
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.fog import add_fog
from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.postprocess import postprocess_scored, score_anchors
from togethernet_ros.vision.preprocess import preprocess_batch

INT8_MARK = ".int8"


def int8_path(path: str | Path) -> Path:
    """NAME.onnx → NAME.int8.onnx and NAME.detect.onnx → NAME.int8.detect.onnx (still a pair)."""
    path = Path(path)
    if path.name.endswith(DETECT_SUFFIX):
        return path.with_name(path.name[: -len(DETECT_SUFFIX)] + INT8_MARK + DETECT_SUFFIX)
    if path.suffix != ".onnx":
        raise ValueError(f"ONNX model path must end with .onnx, got {path}")
    return path.with_name(path.stem + INT8_MARK + ".onnx")


def calibration_frames(source: str | Path, count: int) -> list[np.ndarray]:
    """Up to `count` BGR frames spread evenly over an image, a folder of images or a video."""
    if count < 1:
        raise ValueError(f"the number of calibration frames must be >= 1, got {count}")
    media = MediaSource(source)
    step = max(1, math.ceil((media.total or count) / count))
    # islice: a source of unknown length (step 1) is not read, or held, beyond `count` frames.
    frames = list(itertools.islice((f.image for f in media if f.index % step == 0), count))
    if not frames:
        raise ValueError(f"{source}: no frames to calibrate on")
    return frames


def calibration_inputs(
    frames: Sequence[np.ndarray], input_size: tuple[int, int], fog_betas: Sequence[float] = (0.0,)
) -> list[np.ndarray]:
    """Pre-processed 1×3×H×W float32 inputs: every frame at every fog density."""
    inputs = []
    for frame in frames:
        for beta in fog_betas:
            image = add_fog(frame, beta) if beta > 0 else frame
            batch, _ = preprocess_batch([image], input_size, "bgr")
            inputs.append(batch.numpy())
    return inputs


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over prepared inputs."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs: Iterator[np.ndarray] = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._inputs, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(source: str | Path, target: str | Path, inputs: Sequence[np.ndarray]) -> Path:
    """Write an int8 (QDQ) copy of the exported file `source`, calibrated on `inputs`."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not inputs:
        raise ValueError("int8 calibration needs at least one input")
    info = read_onnx_info(source)
    if info.untrained:
        raise ValueError(f"{source} holds UNTRAINED weights: calibrating them means nothing")
    target = Path(target)
    # The quantizer writes its file as it goes, and without our metadata: it works on a
    # temporary name, and only the finished, self-describing file gets the target's name (an
    # interrupted or disk-full run must not leave a torn or unlabelled copy there).
    scratch = temporary_path(target, ".tmp.onnx")
    try:
        quantize_static(
            str(source),
            str(scratch),
            _Reader(inputs),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        # The quantizer drops the metadata that makes the file self-describing; put it back.
        proto = onnx.load(str(scratch))
    finally:
        scratch.unlink(missing_ok=True)
    source_proto = onnx.load(str(source), load_external_data=False)
    del proto.metadata_props[:]
    for entry in source_proto.metadata_props:
        proto.metadata_props.add().CopyFrom(entry)
    for key, value in {"precision": "int8", "int8_calibration_inputs": str(len(inputs))}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"togethernet.{key}", value
    return write_atomically(target, lambda handle: handle.write(proto.SerializeToString()))


def compare_int8(
    float_path: str | Path,
    int8_file: str | Path,
    inputs: Sequence[np.ndarray],
    conf_threshold: float = 0.3,
    nms_threshold: float = 0.45,
) -> dict[str, float]:
    """How far the int8 file is from its float32 source on `inputs`.

    Returns the median and 99th percentile of the score (objectness × best class) error over
    the anchors the float file scores ≥ 0.05 (far below that, errors do not reach a detection),
    and the fraction of the float file's detections (score ≥ threshold + 0.05, so rounding cannot
    move them across it) that the int8 file finds again (same class, IoU ≥ 0.5).
    """
    import onnxruntime as ort

    info = read_onnx_info(float_path)
    sessions = [
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for path in (float_path, int8_file)
    ]
    # Boxes stay in network-input pixels: an identity letterbox.
    letterbox = [LetterboxInfo.compute(info.input_size, info.input_size)]
    score_errors, found, total = [], 0, 0
    for batch in inputs:
        reference, quantized = (
            score_anchors(
                decode_outputs(
                    [
                        torch.from_numpy(m)
                        for m in session.run(list(MAP_OUTPUT_NAMES), {INPUT_NAME: batch})
                    ],
                    STRIDES,
                    info.input_size,
                )
            )
            for session in sessions
        )
        relevant = reference.scores >= 0.05
        score_errors.append((reference.scores - quantized.scores).abs()[relevant].numpy())
        wanted = postprocess_scored(reference, letterbox, conf_threshold, nms_threshold)[0]
        got = postprocess_scored(quantized, letterbox, conf_threshold, nms_threshold)[0]
        clear = wanted.scores >= conf_threshold + 0.05
        total += int(clear.sum())
        for box, class_id in zip(wanted.boxes[clear], wanted.class_ids[clear], strict=True):
            same = got.boxes[got.class_ids == class_id]
            if len(same) and pairwise_iou(box[None], same).max() >= 0.5:
                found += 1
    errors = np.concatenate(score_errors) if score_errors else np.zeros(0)
    return {
        "score_error_p50": float(np.percentile(errors, 50)) if errors.size else 0.0,
        "score_error_p99": float(np.percentile(errors, 99)) if errors.size else 0.0,
        "detections_found_again": found / total if total else 1.0,
        "detections_compared": float(total),
    }
