"""The single inference thread: pulls batches from a FrameBatcher and routes results back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from togethernet_ros.pipeline.frame_batcher import FrameBatcher

_LOGGER = logging.getLogger("togethernet_ros")


@dataclass(frozen=True)
class BatchInfo:
    """How a result was produced, for diagnostics."""

    batch_index: int
    """Running number of the batch (0, 1, …) in this worker."""
    batch_size: int
    inference_time_s: float
    """Wall time of the ``detector_fn`` call for the whole batch."""
    started_at: float
    """``time.monotonic()`` when the ``detector_fn`` call began."""


DetectorFn = Callable[[list[Any]], Sequence[Any]]
ResultCallback = Callable[[str, Any, Any, BatchInfo], None]
ErrorCallback = Callable[[BaseException, list[tuple[str, Any]]], None]
PrepareFn = Callable[[str, Any], bool]


class InferenceWorker:
    """Runs ``detector_fn`` on batches in one (non-daemon) thread.

    ``detector_fn(frames) -> results`` gets the batch's frames (opaque objects) and must return
    one result per frame, in order; each goes to ``on_result(camera_id, frame, result,
    batch_info)``. Any exception from ``detector_fn`` or ``on_result`` (and a wrong number of
    results) goes to ``on_error(exception, batch)`` and the worker carries on with the next batch.

    ``prepare_fn(camera_id, frame) -> bool``, if given, runs on this thread for each frame that
    waits for its batch (while the batch is not due yet), so pre-processing overlaps the wait;
    it returns whether it prepared anything. If it fails, the frame is left as it is:
    ``detector_fn`` gets it anyway and reports any problem.
    """

    def __init__(
        self,
        detector_fn: DetectorFn,
        batcher: FrameBatcher,
        on_result: ResultCallback,
        on_error: ErrorCallback | None = None,
        poll_interval_s: float = 0.1,
        name: str = "togethernet-inference",
        prepare_fn: PrepareFn | None = None,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        self._detector_fn = detector_fn
        self._batcher = batcher
        self._on_result = on_result
        self._on_error = on_error if on_error is not None else _log_error
        self._prepare_fn = prepare_fn
        self._prepared = 0
        self._poll_interval_s = poll_interval_s
        self._name = name
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._batches = 0
        self._errors = 0

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def batches_processed(self) -> int:
        """Batches for which ``detector_fn`` returned (successfully or not)."""
        return self._batches

    @property
    def errors(self) -> int:
        """Exceptions passed to ``on_error`` so far."""
        return self._errors

    @property
    def frames_prepared(self) -> int:
        """Frames that ``prepare_fn`` pre-processed while they waited for their batch."""
        return self._prepared

    def start(self) -> None:
        """Start the thread; RuntimeError if it is already running or was stopped."""
        if self._thread is not None:
            raise RuntimeError(f"InferenceWorker {self._name!r} can only be started once")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=False)
        self._thread.start()

    def stop(self, timeout_s: float | None = 10.0) -> None:
        """Ask the thread to finish its current batch and exit, then join it.

        Raises TimeoutError if it has not exited after ``timeout_s`` (e.g. a hung detector).
        Safe to call more than once and before ``start``.
        """
        thread = self._thread
        if thread is None:
            return
        self._stop_requested.set()
        self._batcher.wake()
        if thread is threading.current_thread():
            return
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(
                f"InferenceWorker {self._name!r} did not stop within {timeout_s} s "
                "(detector_fn still running?)"
            )

    def _run(self) -> None:
        while not self._stop_requested.is_set():
            batch = self._batcher.next_batch(
                self._poll_interval_s,
                cancel=self._stop_requested,
                on_waiting=self._prepare if self._prepare_fn is not None else None,
            )
            # A batch taken just as the stop came is the current batch: finished, not lost.
            if batch:
                self._process(batch)

    def _process(self, batch: list[tuple[str, Any]]) -> None:
        frames = [frame for _, frame in batch]
        started = time.monotonic()
        try:
            results = list(self._detector_fn(frames))
            if len(results) != len(frames):
                raise ValueError(
                    f"detector_fn returned {len(results)} results for a batch of {len(frames)}"
                )
        except Exception as error:  # the node must survive any detector failure
            self._batches += 1
            self._report(error, batch)
            return
        info = BatchInfo(
            batch_index=self._batches,
            batch_size=len(batch),
            inference_time_s=time.monotonic() - started,
            started_at=started,
        )
        self._batches += 1
        for (camera_id, frame), result in zip(batch, results, strict=True):
            try:
                self._on_result(camera_id, frame, result, info)
            except Exception as error:  # one camera's publisher failing must not stop others
                self._report(error, [(camera_id, frame)])

    def _prepare(self, camera_id: str, frame: Any) -> None:
        try:
            prepared = self._prepare_fn(camera_id, frame)  # type: ignore[misc]
        except Exception as error:  # detector_fn meets the frame again and reports it
            _LOGGER.debug("preparing a frame of %s failed: %s", camera_id, error)
            return
        self._prepared += int(bool(prepared))

    def _report(self, error: BaseException, batch: list[tuple[str, Any]]) -> None:
        self._errors += 1
        try:
            self._on_error(error, batch)
        except Exception:
            _LOGGER.exception("on_error callback raised while handling %r", error)


def _log_error(error: BaseException, batch: list[tuple[str, Any]]) -> None:
    cameras = ", ".join(camera for camera, _ in batch)
    _LOGGER.error("inference failed for cameras [%s]: %s", cameras, error, exc_info=error)
