"""A fixed-shape function run eagerly or replayed from a captured CUDA graph.

A CUDA graph records the kernels a function launches once and replays them with one launch, so
a pipeline of hundreds of small kernels (TogetherNet at batch 1) is no longer bound by Python's
per-kernel launch cost. It only works for functions whose inputs live at fixed addresses and
whose shapes and control flow do not depend on the data; the caller guarantees that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

Output = TypeVar("Output")


class CapturedCall(Generic[Output]):
    """Calls `function()`; with `capture=True` it is captured once and replayed afterwards.

    The outputs of a replay live in the graph's memory and are overwritten by the next replay
    of any graph sharing `pool`: consume them before replaying again.
    """

    def __init__(
        self,
        function: Callable[[], Output],
        device: torch.device,
        capture: bool,
        pool: tuple[int, int] | None = None,
    ) -> None:
        self.function = function
        self.device = device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: Output | None = None
        if capture:
            self._capture(pool)

    def _capture(self, pool: tuple[int, int] | None) -> None:
        # Kernels follow their tensors' device, but streams and capture follow the current
        # device: without this, a model on cuda:1 would run eagerly and record an empty graph.
        with torch.cuda.device(self.device):
            caller = torch.cuda.current_stream()
            side_stream = torch.cuda.Stream()
            side_stream.wait_stream(caller)
            # The stream context gives the caller its stream back even when capture fails.
            with torch.cuda.stream(side_stream), torch.inference_mode():
                # Warm-up outside the capture: cuDNN autotuning, lazy allocations and cached
                # tables (normalisation LUT, anchor grid) must not happen while recording.
                for _ in range(2):
                    self.function()
                side_stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                # capture_begin/end rather than torch.cuda.graph(), which also runs gc.collect()
                # and empty_cache(): tens of ms when a new camera resolution shows up mid-run.
                # thread_local: a CUDA call another thread makes meanwhile (a second detector
                # in the process, allocating) neither fails nor spoils this capture, as it
                # would in the default global mode; this thread stays checked.
                graph.capture_begin(pool=pool, capture_error_mode="thread_local")
                try:
                    output = self.function()
                finally:
                    graph.capture_end()
            caller.wait_stream(side_stream)
        self.graph, self.output = graph, output

    def __call__(self) -> Output:
        """Run the function (replay the graph when captured) and return its outputs."""
        if self.graph is None:
            with torch.inference_mode():
                return self.function()
        with torch.cuda.device(self.device):
            self.graph.replay()
        return self.output  # type: ignore[return-value]
