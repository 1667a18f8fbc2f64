"""PyTorch backend: CPU or CUDA, fp32 or fp16, channels_last, CUDA graphs on the GPU.

On CUDA only uint8 pixels are uploaded; letterbox, normalisation, decode and the dehazed image
conversion run on the device, replayed from captured CUDA graphs where the shapes are fixed
(`DevicePipeline`: letterbox per camera resolution; normalise → forward → decode → score per
batch size), so batch-1 latency is not bound by Python's per-kernel launch overhead. The best
anchors come to the host in one copy for thresholding and NMS.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Hashable, Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from togethernet_ros.inference.batch_norm_folding import fold_batch_norms
from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS
from togethernet_ros.inference.detector_base import DetectorBase
from togethernet_ros.inference.device_pipeline import DevicePipeline
from togethernet_ros.inference.model_compilation import check_compile_mode, compile_for_inference
from togethernet_ros.inference.model_fusion import fuse_for_inference
from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.postprocess import ScoredAnchors

LOGGER = logging.getLogger("togethernet_ros")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse "cpu" / "cuda" / "cuda:N"; ValueError for anything else or a missing GPU."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from error
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available to torch")
        if parsed.index is None:
            parsed = torch.device("cuda", torch.cuda.current_device())
    return parsed


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map "fp32"/"fp16" to a dtype; fp16 needs CUDA (CPU half kernels are slow or missing)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs device='cuda'; use 'fp32' on the CPU")
    return PRECISIONS[precision]


class TorchDetector(DetectorBase):
    """Runs a TogetherNet module eagerly (CPU) or through CUDA graphs (GPU).

    The model is copied; BatchNorm is folded into the convolutions unless `fold_bn=False`, and
    the DTFE's deformable convolution and transformer and the head's box and objectness
    predictions run in fused inference forms (`model_fusion`: the same function with fewer
    kernels) unless `fuse_modules=False`.
    `channels_last` None = on; `cuda_graphs` None = on for CUDA (off on the CPU).
    `device_nms` None = thresholding and NMS decided inside the model stage on CUDA, on the
    host on the CPU (see `DevicePipeline`); the detections are the same either way.
    `compile_mode` (see `model_compilation.COMPILE_MODES`) runs the model through
    `torch.compile`; batch 1 is compiled here, so a missing compiler or an unsupported
    operation fails construction with a clear error instead of every later batch.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        input_size: tuple[int, int] = (640, 640),
        conf_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        color_order: str = "bgr",
        channels_last: bool | None = None,
        cuda_graphs: bool | None = None,
        fold_bn: bool = True,
        fuse_modules: bool = True,
        max_batch_size: int = 16,
        compile_mode: str | None = None,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
        device_nms: bool | None = None,
    ) -> None:
        self.compile_mode = check_compile_mode(compile_mode)
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        on_gpu = self.device.type == "cuda"
        super().__init__(
            class_names,
            input_size,
            backend=f"torch-{self.device.type}-{precision}"
            + ("-compiled" if compile_mode is not None else ""),
            conf_threshold=conf_threshold,
            nms_threshold=nms_threshold,
            color_order=color_order,
            preprocess_device=self.device,
            max_batch_size=max_batch_size,
            max_detections=max_detections,
        )
        # channels_last lets cuDNN use tensor-core NHWC kernels and saves oneDNN its layout
        # reorders on the CPU (measured 330 -> 292 ms at 640x640 on 2 cores).
        use_channels_last = True if channels_last is None else channels_last
        self.memory_format = torch.channels_last if use_channels_last else torch.contiguous_format
        self.use_cuda_graphs = on_gpu if cuda_graphs is None else bool(cuda_graphs and on_gpu)
        # A private copy: folding and dtype/device changes must not touch the caller's model.
        model = copy.deepcopy(model).eval()
        if fold_bn:
            fold_batch_norms(model)
        if fuse_modules:
            fuse_for_inference(model)
        self.model: nn.Module | None = model.to(
            self.device, dtype=self.dtype, memory_format=self.memory_format
        )
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels
        forward_model = (
            self.model
            if compile_mode is None
            else compile_for_inference(self.model, compile_mode, variants=2 * max_batch_size)
        )
        self._pipeline: DevicePipeline | None = DevicePipeline(
            forward_model,
            input_size=self.input_size,
            dtype=self.dtype,
            memory_format=self.memory_format,
            device=self.device,
            max_batch_size=self.max_batch_size,
            cuda_graphs=self.use_cuda_graphs,
            device_nms=on_gpu if device_nms is None else bool(device_nms),
        )
        if compile_mode is not None:
            self._compile_first_batch()

    def _compile_first_batch(self) -> None:
        height, width = self.input_size
        try:
            self.detect([np.full((height, width, 3), 128, dtype=np.uint8)])
        except Exception as error:  # Dynamo/Inductor raise many types; all mean the same here
            raise RuntimeError(
                f"torch.compile of the model (mode {self.compile_mode!r}) failed: "
                f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
            ) from error

    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[int, list[LetterboxInfo]]:
        return len(images), self._open_pipeline().letterbox(images)

    def prepare_ahead(self, key: Hashable, image: np.ndarray) -> bool:
        """Upload and letterbox a waiting frame now (see `DevicePipeline.prepare_ahead`)."""
        with self._detect_lock:
            self._open_pipeline().prepare_ahead(key, image)
        return True

    def _infer(self, prepared: object, restore: bool) -> tuple[ScoredAnchors, torch.Tensor | None]:
        return self._open_pipeline().infer(
            cast(int, prepared),
            restore,
            self.color_order,
            thresholds=(self.conf_threshold, self.nms_threshold),
        )

    def _open_pipeline(self) -> DevicePipeline:
        if self._pipeline is None:
            raise RuntimeError("detector is closed")
        return self._pipeline

    def _forward(
        self, batch: torch.Tensor, restore: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Raw head maps of a normalised batch, run eagerly (for checks; detect() does not use it)."""
        if self.model is None:
            raise RuntimeError("detector is closed")
        batch = batch.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        with torch.inference_mode():
            output = self.model(batch, restore=restore)
        return list(output.maps), output.dehazed

    def close(self) -> None:
        """Drop the model and graphs and return cached GPU memory to the driver."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
