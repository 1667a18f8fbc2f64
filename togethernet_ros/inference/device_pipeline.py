"""detect()'s fixed-shape stages on the model's device, replayed from CUDA graphs on a GPU.

Two stages, each a `CapturedCall`:

- letterbox, per camera resolution: the uploaded frame is resized into a grey input-size
  image, which one copy then places into its batch slot of a persistent uint8 canvas;
- model, per (batch size, restore, colour order): normalise the first slots, forward, decode
  every anchor and score it (obj x best class, xyxy box), pack the best few hundred anchors
  per image, with `device_nms` threshold and suppress them (vision/device_nms.py: a mask of
  the kept ones), and return the raw restoration output.

Outside the graphs stay the upload and slot copy of each frame and the copies of the packed
anchors and their mask, from which the host reads the detections (or, without `device_nms`,
thresholds and suppresses them itself). On an H100, batch-1 `detect()` with
only the forward pass graphed spent ~1.5 ms of 3.9 ms launching ~40 small pre- and
post-processing kernels one by one and waiting on six host-device synchronisations; here they
become graph replays and one synchronisation. On the CPU (or with `cuda_graphs=False`) the same
functions run eagerly, which is also how they are tested without a GPU.

A frame can also be letterboxed ahead of its batch (`prepare_ahead`, keyed by camera) while the
batch still waits for other cameras; `letterbox` then recognises that very array and only
copies its prepared pixels into the slot, which takes the upload and resize of every frame but
the last one off the batch's critical path.

Not thread-safe: the canvas and the graphs' buffers are shared, so one caller at a time
(`DetectorBase.detect` serialises its callers).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn

from togethernet_ros.inference.captured_call import CapturedCall
from togethernet_ros.inference.detector_base import HOST_CANDIDATES, STRIDES
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.device_nms import (
    DEVICE_NMS_PASSES,
    MAX_DEVICE_NMS_CANDIDATES,
    suppress_packed_anchors,
)
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
# Resolutions remembered for "seen before": far more than cameras, few enough to cost nothing.
_SHAPES_REMEMBERED = 256


class UploadBuffers(NamedTuple):
    """Fixed-address tensors of one camera resolution, read and written by its letterbox graph."""

    frame: torch.Tensor  # H x W x 3 uint8, the uploaded source image
    letterboxed: torch.Tensor  # 3 x h x w uint8 view with the canvas slots' strides


class PreparedFrame(NamedTuple):
    """A frame letterboxed ahead of its batch by `DevicePipeline.prepare_ahead`."""

    image: np.ndarray | None  # the array prepared (matched by identity); None once used
    info: LetterboxInfo
    letterboxed: torch.Tensor  # 3 x h x w uint8, strided like a canvas slot


class DevicePipeline:
    """Letterbox → normalise → forward → decode → score for one model on one device.

    `max_source_shapes` bounds how many camera resolutions keep upload buffers and a letterbox
    graph at once (the least recently used is dropped, with a log line, and captured again when
    it comes back). The model stage also packs the `host_candidates` best anchors per image, so
    thresholding and NMS usually run on the host after one small copy (0 = on the device).
    `max_prepared` bounds the frames kept letterboxed ahead (one per key, least recently
    prepared dropped first). `device_nms` also decides thresholding and NMS of those anchors
    in the model stage (worth it on a GPU, where the host's NMS costs more than the graph's
    extra kernels; on a CPU the host's is cheaper).
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
        max_prepared: int = 16,
        device_nms: bool = False,
        nms_passes: int = DEVICE_NMS_PASSES,
    ) -> None:
        self.model = model
        self.input_size = input_size
        self.dtype = dtype
        self.memory_format = memory_format
        self.device = device
        # Per stage: a capture failure (an op this torch/CUDA version cannot capture) makes
        # that stage eager for new shapes; graphs already captured keep running.
        self.graphed_stages = {"letterbox": cuda_graphs, "model": cuda_graphs}
        self.max_source_shapes = max_source_shapes
        self.host_candidates = host_candidates
        self.max_prepared = max_prepared
        self.nms_passes = nms_passes
        if device_nms and host_candidates > MAX_DEVICE_NMS_CANDIDATES:
            raise ValueError(
                f"device_nms handles at most {MAX_DEVICE_NMS_CANDIDATES} packed anchors per "
                f"image, got host_candidates={host_candidates}"
            )
        # [conf, nms] read by the model stage's NMS; a tensor, so new values need no capture.
        # Nothing to suppress on the device when no anchors are packed (host_candidates 0).
        self._nms_thresholds = (
            torch.zeros(2, dtype=torch.float32, device=device)
            if device_nms and host_candidates > 0
            else None
        )
        self._nms_threshold_values: tuple[float, float] | None = None
        height, width = input_size
        self.canvas = torch.full(
            (max_batch_size, 3, height, width), PAD_VALUE, dtype=torch.uint8, device=device
        ).contiguous(memory_format=torch.channels_last)
        # Graph mode only: the buffers and letterbox graph of each camera resolution.
        self._uploads: OrderedDict[tuple[int, int], UploadBuffers] = OrderedDict()
        self._letterbox_calls: dict[tuple[int, int], CapturedCall[None]] = {}
        self._model_calls: dict[
            tuple[int, bool, str], CapturedCall[tuple[ScoredAnchors, torch.Tensor | None]]
        ] = {}
        self._prepared: OrderedDict[Hashable, PreparedFrame] = OrderedDict()
        self._shapes_seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        # One memory pool for every graph (made at the first capture): they are replayed one
        # at a time and each replay's outputs are consumed before the next.
        self._pool: tuple[int, int] | None = None

    def letterbox(self, images: Sequence[np.ndarray]) -> list[LetterboxInfo]:
        """Place each HxWx3 uint8 image into its canvas slot; returns the letterbox geometry.

        An image prepared by `prepare_ahead` (the same array object) is only copied into its
        slot; the entry is used up.
        """
        if len(images) > self.canvas.shape[0]:
            raise ValueError(
                f"batch of {len(images)} exceeds the pipeline's {self.canvas.shape[0]} slots"
            )
        infos = []
        for slot, image in enumerate(images):
            prepared = self._take_prepared(image)
            if prepared is not None:
                self.canvas[slot].copy_(prepared.letterboxed)
                infos.append(prepared.info)
                continue
            validate_image(image, name=f"images[{slot}]")
            info = LetterboxInfo.compute(image.shape[:2], self.input_size)
            self._letterbox_into(self.canvas[slot], image, info)
            infos.append(info)
        return infos

    def prepare_ahead(self, key: Hashable, image: np.ndarray) -> None:
        """Letterbox `image` now, so that a later `letterbox` of this array only copies it.

        `key` names the source (a camera): its previous prepared frame, used or not, is
        replaced. The image must not be modified in place until it has been letterboxed.
        """
        validate_image(image, name=f"frame of {key!r}")
        info = LetterboxInfo.compute(image.shape[:2], self.input_size)
        previous = self._prepared.pop(key, None)
        if previous is not None:
            target = previous.letterboxed
        else:
            if len(self._prepared) >= self.max_prepared:
                self._prepared.popitem(last=False)
            height, width = self.input_size
            target = torch.empty((height, width, 3), dtype=torch.uint8, device=self.device).permute(
                2, 0, 1
            )
        self._letterbox_into(target, image, info)
        self._prepared[key] = PreparedFrame(image, info, target)

    def _take_prepared(self, image: np.ndarray) -> PreparedFrame | None:
        for key, prepared in self._prepared.items():
            if prepared.image is not None and prepared.image is image:
                # Keep the key's buffer for its next frame, but forget this image.
                self._prepared[key] = prepared._replace(image=None)
                return prepared
        return None

    def _letterbox_into(self, target: torch.Tensor, image: np.ndarray, info: LetterboxInfo) -> None:
        """Letterbox `image` into `target` (3 x h x w uint8, a canvas slot or a prepared buffer).

        A resolution is captured as a graph on its second frame: a camera's frames all share
        one, but a folder of photos (`predict`) would otherwise capture (two warm-up runs, the
        capture, a synchronisation) for nearly every image.
        """
        shape = info.source_size
        if shape in self._letterbox_calls or (
            self.graphed_stages["letterbox"] and self._seen_before(shape)
        ):
            self._letterbox_graphed(image, info, target)
        else:
            _letterbox_padded(target, image_to_tensor(image, self.device), info)

    def _seen_before(self, shape: tuple[int, int]) -> bool:
        """Whether a frame of `shape` came before (the last few hundred shapes are kept)."""
        seen = shape in self._shapes_seen
        self._shapes_seen[shape] = None
        self._shapes_seen.move_to_end(shape)
        if len(self._shapes_seen) > _SHAPES_REMEMBERED:
            self._shapes_seen.popitem(last=False)
        return seen

    @property
    def device_nms(self) -> bool:
        """Whether the model stage also thresholds and suppresses the packed anchors."""
        return self._nms_thresholds is not None

    def infer(
        self,
        batch_size: int,
        restore: bool,
        color_order: str,
        thresholds: tuple[float, float] | None = None,
    ) -> tuple[ScoredAnchors, torch.Tensor | None]:
        """Score every anchor of the first `batch_size` slots (and restore them if asked).

        `color_order` is that of the images in the canvas. With `device_nms`, `thresholds`
        (conf, nms) are those the anchors are suppressed with (required then). On a GPU the
        tensors returned are overwritten by the next call: consume them first.
        """
        nms_values = None
        if self._nms_thresholds is not None:
            if thresholds is None:
                raise ValueError("a pipeline with device_nms needs the thresholds to infer")
            nms_values = (float(thresholds[0]), float(thresholds[1]))
            self._set_nms_thresholds(nms_values)
        key = (int(batch_size), bool(restore), color_order)
        call = self._model_calls.get(key)
        if call is None:
            call = self._captured("model", lambda: self._run_model(*key))
            self._model_calls[key] = call
        scored, dehazed = call()
        if scored.suppression is not None and nms_values is not None:
            # The thresholds ride along so the host knows which question the mask answers.
            conf_threshold, nms_threshold = nms_values
            scored = scored._replace(
                suppression=scored.suppression._replace(
                    conf_threshold=conf_threshold, nms_threshold=nms_threshold
                )
            )
        return scored, dehazed

    def _set_nms_thresholds(self, values: tuple[float, float]) -> None:
        if self._nms_thresholds is not None and values != self._nms_threshold_values:
            # Stream-ordered fills: a replay queued before them still reads the old values.
            self._nms_thresholds[0].fill_(values[0])
            self._nms_thresholds[1].fill_(values[1])
            self._nms_threshold_values = values

    def close(self) -> None:
        """Drop the graphs, buffers and the model reference."""
        self._letterbox_calls.clear()
        self._model_calls.clear()
        self._uploads.clear()
        self._prepared.clear()
        self._pool = None
        self.model = None  # type: ignore[assignment]

    def _letterbox_graphed(
        self, image: np.ndarray, info: LetterboxInfo, target: torch.Tensor
    ) -> None:
        shape = info.source_size
        buffers = self._upload_buffers(shape)
        # A pageable host copy: it waits for earlier work on the stream (the previous image's
        # letterbox), so the buffer is free to overwrite, and the replay below runs after it.
        # Page-locked per-slot staging (numpy memcpy + async DMA) was measured slower on an
        # H100 host: batch-1 upload 0.20 -> 0.28 ms, batch 16 2.67 -> 3.86 ms (the driver's
        # own staging copies faster than one numpy memcpy).
        buffers.frame.copy_(torch.from_numpy(np.ascontiguousarray(image)))
        call = self._letterbox_calls.get(shape)
        if call is None:
            source = buffers.frame.permute(2, 0, 1).unsqueeze(0)
            call = self._captured(
                "letterbox", lambda: _letterbox_padded(buffers.letterboxed, source, info)
            )
            if call.graph is not None:  # else capture failed and later frames run eagerly
                self._letterbox_calls[shape] = call
        call()
        target.copy_(buffers.letterboxed)

    def _upload_buffers(self, shape: tuple[int, int]) -> UploadBuffers:
        buffers = self._uploads.get(shape)
        if buffers is not None:
            self._uploads.move_to_end(shape)
            return buffers
        if len(self._uploads) >= self.max_source_shapes:
            dropped, _ = self._uploads.popitem(last=False)
            self._letterbox_calls.pop(dropped, None)
            LOGGER.debug(
                "more than %d camera resolutions: dropped the letterbox graph of %dx%d",
                self.max_source_shapes,
                dropped[1],
                dropped[0],
            )
        height, width = self.input_size
        buffers = UploadBuffers(
            frame=torch.empty((*shape, 3), dtype=torch.uint8, device=self.device),
            letterboxed=torch.empty(
                (height, width, 3), dtype=torch.uint8, device=self.device
            ).permute(2, 0, 1),
        )
        self._uploads[shape] = buffers
        return buffers

    def _run_model(
        self, batch_size: int, restore: bool, color_order: str
    ) -> tuple[ScoredAnchors, torch.Tensor | None]:
        batch = normalize_canvas(self.canvas[:batch_size], color_order)
        batch = batch.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        output = self.model(batch, restore=restore)
        decoded = decode_outputs(output.maps, STRIDES, self.input_size)
        scored = score_anchors(decoded, top_k=self.host_candidates)
        if self._nms_thresholds is not None and scored.top is not None:
            suppression = suppress_packed_anchors(scored.top, self._nms_thresholds, self.nms_passes)
            scored = scored._replace(suppression=suppression)
        return scored, output.dehazed

    def _captured(self, stage: str, function: Callable[[], Output]) -> CapturedCall[Output]:
        """A CapturedCall of `function`; a capture failure makes `stage` eager for new shapes."""
        if not self.graphed_stages[stage]:
            return CapturedCall(function, self.device, capture=False)
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            return CapturedCall(function, self.device, capture=True, pool=self._pool)
        except torch.cuda.OutOfMemoryError:
            raise  # not a capture problem: the caller must hear about it
        except RuntimeError as error:
            LOGGER.warning(
                "CUDA graph capture of the %s stage failed (%s); new shapes run eagerly",
                stage,
                error,
            )
            self.graphed_stages[stage] = False
            return CapturedCall(function, self.device, capture=False)


def _letterbox_padded(target: torch.Tensor, image: torch.Tensor, info: LetterboxInfo) -> None:
    """Grey `target` (3 x h x w uint8), then letterbox the 1 x 3 x H x W `image` into it."""
    # The target may hold a frame of another size from an earlier batch: pad it again first.
    target.fill_(PAD_VALUE)
    letterbox_into(target, image, info)
