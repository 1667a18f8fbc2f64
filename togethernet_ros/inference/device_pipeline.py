"""detect()'s fixed-shape stages on the model's device, replayed from CUDA graphs on a GPU.

Two stages, each a `CapturedCall`:

- letterbox, per (source shape, batch slot): the uploaded frame is resized into its slot of a
  persistent uint8 canvas (grey padding included);
- model, per (batch size, restore, colour order): normalise the first slots, forward, decode
  every anchor and score it (obj x best class, xyxy box), plus the raw restoration output.

Only what depends on the data stays eager: the upload of each frame and one copy of the best
few hundred anchors per image, which the host thresholds and suppresses (NMS). On an H100, batch-1 `detect()` with only the forward pass graphed
spent ~1.5 ms of 3.9 ms launching ~40 small pre- and post-processing kernels one by one; here
they become graph replays. On the CPU (or with `cuda_graphs=False`) the same functions run
eagerly, which is also how they are tested without a GPU.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from togethernet_ros.inference.captured_call import CapturedCall
from togethernet_ros.inference.detector_base import HOST_CANDIDATES, STRIDES
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.letterbox import (
    PAD_VALUE,
    LetterboxInfo,
    image_to_tensor,
    letterbox_into,
    validate_image,
)
from togethernet_ros.vision.postprocess import ScoredAnchors, score_anchors
from togethernet_ros.vision.preprocess import normalize_canvas

LOGGER = logging.getLogger("togethernet_ros")
Output = TypeVar("Output")


class DevicePipeline:
    """Letterbox → normalise → forward → decode → score for one model on one device.

    `max_source_shapes` bounds how many camera resolutions keep an upload buffer and letterbox
    graphs at once (least recently used ones are dropped and re-captured when they come back).
    The model stage also packs the `host_candidates` best anchors per image, so thresholding
    and NMS usually run on the host after one small copy (0 = always on the device).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_size: tuple[int, int],
        dtype: torch.dtype,
        memory_format: torch.memory_format,
        device: torch.device,
        max_batch_size: int,
        cuda_graphs: bool,
        max_source_shapes: int = 8,
        host_candidates: int = HOST_CANDIDATES,
    ) -> None:
        self.model = model
        self.input_size = input_size
        self.dtype = dtype
        self.memory_format = memory_format
        self.device = device
        # Per stage: a capture failure in one (an op that cannot be captured on this torch/CUDA
        # version) turns graphs off for that stage only, so the other keeps its speed-up.
        self.graphed_stages = {"letterbox": cuda_graphs, "model": cuda_graphs}
        self.max_source_shapes = max_source_shapes
        self.host_candidates = host_candidates
        height, width = input_size
        self.canvas = torch.full(
            (max_batch_size, 3, height, width), PAD_VALUE, dtype=torch.uint8, device=device
        ).contiguous(memory_format=torch.channels_last)
        # Graph mode only: one upload buffer per source shape (its address is baked into the
        # letterbox graphs), and the graphs themselves.
        self._frames: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._letterbox_calls: dict[tuple[int, int, int], CapturedCall[None]] = {}
        self._model_calls: dict[
            tuple[int, bool, str], CapturedCall[tuple[ScoredAnchors, torch.Tensor | None]]
        ] = {}
        # One memory pool for every graph (made at the first capture): they are replayed one
        # at a time and each replay's outputs are consumed before the next.
        self._pool: tuple[int, int] | None = None

    def letterbox(self, images: Sequence[np.ndarray]) -> list[LetterboxInfo]:
        """Place each HxWx3 uint8 image into its canvas slot; returns the letterbox geometry."""
        if len(images) > self.canvas.shape[0]:
            raise ValueError(
                f"batch of {len(images)} exceeds the pipeline's {self.canvas.shape[0]} slots"
            )
        infos = []
        for slot, image in enumerate(images):
            validate_image(image, name=f"images[{slot}]")
            info = LetterboxInfo.compute(image.shape[:2], self.input_size)
            if self.graphed_stages["letterbox"]:
                self._letterbox_graphed(image, info, slot)
            else:
                self._letterbox_slot(image_to_tensor(image, self.device), info, slot)
            infos.append(info)
        return infos

    def infer(
        self, batch_size: int, restore: bool, color_order: str
    ) -> tuple[ScoredAnchors, torch.Tensor | None]:
        """Score every anchor of the first `batch_size` slots (and restore them if asked).

        `color_order` is that of the images in the canvas. On a GPU the tensors returned are
        overwritten by the next call: consume them first.
        """
        key = (int(batch_size), bool(restore), color_order)
        call = self._model_calls.get(key)
        if call is None:
            call = self._captured("model", lambda: self._run_model(*key))
            self._model_calls[key] = call
        return call()

    def close(self) -> None:
        """Drop the graphs, buffers and the model reference."""
        self._letterbox_calls.clear()
        self._model_calls.clear()
        self._frames.clear()
        self._pool = None
        self.model = None  # type: ignore[assignment]

    def _letterbox_slot(self, image: torch.Tensor, info: LetterboxInfo, slot: int) -> None:
        # The slot may hold a frame of another size from an earlier batch: re-pad it first.
        self.canvas[slot].fill_(PAD_VALUE)
        letterbox_into(self.canvas[slot], image, info)

    def _letterbox_graphed(self, image: np.ndarray, info: LetterboxInfo, slot: int) -> None:
        shape = info.source_size
        frame = self._frame_buffer(shape)
        # Pageable host memory: the copy returns once the driver has staged the pixels, so the
        # caller may reuse the array; the letterbox replay is ordered after it on the stream.
        frame.copy_(torch.from_numpy(np.ascontiguousarray(image)))
        key = (*shape, slot)
        call = self._letterbox_calls.get(key)
        if call is None:
            tensor = frame.permute(2, 0, 1).unsqueeze(0)
            call = self._captured("letterbox", lambda: self._letterbox_slot(tensor, info, slot))
            if call.graph is not None:  # else capture failed and later frames run eagerly
                self._letterbox_calls[key] = call
        call()

    def _frame_buffer(self, shape: tuple[int, int]) -> torch.Tensor:
        frame = self._frames.get(shape)
        if frame is not None:
            self._frames.move_to_end(shape)
            return frame
        if len(self._frames) >= self.max_source_shapes:
            dropped, _ = self._frames.popitem(last=False)
            for key in [key for key in self._letterbox_calls if key[:2] == dropped]:
                del self._letterbox_calls[key]
        frame = torch.empty((*shape, 3), dtype=torch.uint8, device=self.device)
        self._frames[shape] = frame
        return frame

    def _run_model(
        self, batch_size: int, restore: bool, color_order: str
    ) -> tuple[ScoredAnchors, torch.Tensor | None]:
        batch = normalize_canvas(self.canvas[:batch_size], color_order)
        batch = batch.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        output = self.model(batch, restore=restore)
        decoded = decode_outputs(output.maps, STRIDES, self.input_size)
        scored = score_anchors(decoded, top_k=self.host_candidates)
        return scored, output.dehazed

    def _captured(self, stage: str, function: Callable[[], Output]) -> CapturedCall[Output]:
        """A CapturedCall of `function`; a capture failure makes `stage` eager from now on."""
        if not self.graphed_stages[stage]:
            return CapturedCall(function, self.device, capture=False)
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            return CapturedCall(function, self.device, capture=True, pool=self._pool)
        except RuntimeError as error:
            LOGGER.warning(
                "CUDA graph capture of the %s stage failed (%s); running it eagerly from now on",
                stage,
                error,
            )
            self.graphed_stages[stage] = False
            if stage == "letterbox":
                self._letterbox_calls.clear()
                self._frames.clear()
            else:
                self._model_calls.clear()
            return CapturedCall(function, self.device, capture=False)
