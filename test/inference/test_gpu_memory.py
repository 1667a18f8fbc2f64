"""release_cached_gpu_memory on a machine without a GPU (the GPU side runs in gpu_check)."""

from __future__ import annotations

import weakref

import torch

from togethernet_ros.inference.gpu_memory import release_cached_gpu_memory


class _Buffers:
    """Stands for a closed detector's tensors kept alive by a reference cycle."""

    def __init__(self) -> None:
        self.tensor = torch.zeros(4)
        self.me = self


def test_it_collects_tensors_held_by_a_cycle_and_starts_no_cuda():
    was_initialized = torch.cuda.is_initialized()
    buffers = _Buffers()
    alive = weakref.ref(buffers)
    del buffers
    release_cached_gpu_memory()
    assert alive() is None
    assert torch.cuda.is_initialized() == was_initialized
