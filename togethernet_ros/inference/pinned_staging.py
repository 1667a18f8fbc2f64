"""Page-locked host buffers per batch slot, so frame uploads become asynchronous DMA.

A copy from ordinary (pageable) memory makes the host wait while the driver stages the bytes:
~0.3-0.5 ms per 1280x720 frame, paid one frame after another before the model can start. From a
pinned buffer the host only does a memcpy and queues the transfer, which overlaps the previous
frame's letterbox on the GPU. One buffer per slot (grown to the largest frame seen), not per
resolution, bounds the pinned memory to max_batch_size x the largest frame.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

LOGGER = logging.getLogger("togethernet_ros")


class PinnedStaging:
    """Uploads HxWx3 uint8 frames to device tensors through one pinned buffer per slot.

    Where page-locked memory cannot be had (no CUDA, or a locked-memory limit), it logs once
    and copies from pageable memory instead: slower, same result.
    """

    def __init__(self, slots: int) -> None:
        self._buffers: list[torch.Tensor | None] = [None] * slots
        # Recorded after each transfer: the buffer is not rewritten before its DMA finished.
        self._transfers: list[torch.cuda.Event | None] = [None] * slots
        self.pinned = True

    def upload(self, slot: int, image: np.ndarray, target: torch.Tensor) -> None:
        """Queue the copy of `image` into `target` (same shape) on the current stream."""
        if tuple(target.shape) != image.shape:
            raise ValueError(f"image of shape {image.shape} does not fit {tuple(target.shape)}")
        host = self._host_view(slot, image) if self.pinned else None
        if host is None:
            target.copy_(torch.from_numpy(np.ascontiguousarray(image)))
            return
        np.copyto(host.numpy(), image)
        target.copy_(host, non_blocking=True)
        transfer = self._transfers[slot]
        if transfer is None:
            transfer = self._transfers[slot] = torch.cuda.Event()
        transfer.record(torch.cuda.current_stream(target.device))

    def close(self) -> None:
        """Release the pinned buffers (after waiting for transfers still reading them)."""
        for transfer in self._transfers:
            if transfer is not None:
                transfer.synchronize()
        self._buffers = [None] * len(self._buffers)
        self._transfers = [None] * len(self._transfers)

    def _host_view(self, slot: int, image: np.ndarray) -> torch.Tensor | None:
        transfer = self._transfers[slot]
        if transfer is not None:
            transfer.synchronize()
        buffer = self._buffers[slot]
        if buffer is None or buffer.numel() < image.nbytes:
            try:
                buffer = torch.empty(image.nbytes, dtype=torch.uint8, pin_memory=True)
            except RuntimeError as error:
                LOGGER.warning(
                    "no page-locked host memory (%s); frames are uploaded from pageable memory",
                    error,
                )
                self.pinned = False
                return None
            self._buffers[slot] = buffer
        return buffer[: image.nbytes].view(image.shape)
