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
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: Output | None = None
        if capture:
            self._capture(device, pool)

    def _capture(self, device: torch.device, pool: tuple[int, int] | None) -> None:
        side_stream = torch.cuda.Stream(device=device)
        side_stream.wait_stream(torch.cuda.current_stream(device))
        # Warm-up outside the capture: cuDNN autotuning, lazy allocations and cached tables
        # (normalisation LUT, anchor grid) must not happen while recording.
        with torch.cuda.stream(side_stream), torch.inference_mode():
            for _ in range(2):
                self.function()
        torch.cuda.current_stream(device).wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool), torch.inference_mode():
            self.output = self.function()
        self.graph = graph

    def __call__(self) -> Output:
        """Run the function (replay the graph when captured) and return its outputs."""
        if self.graph is None:
            with torch.inference_mode():
                return self.function()
        self.graph.replay()
        return self.output  # type: ignore[return-value]
