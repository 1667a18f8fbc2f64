"""Handing a closed detector's GPU memory back to the driver."""

from __future__ import annotations

import gc

import torch


def release_cached_gpu_memory() -> None:
    """Collect unreachable tensors, then return torch's cached CUDA blocks to the driver.

    torch keeps freed blocks for reuse, so a closed detector's canvas, graph pools and output
    buffers would stay reserved after a lifecycle cleanup, where other processes on the GPU
    need them. The collection comes first: blocks still referenced from a reference cycle are
    not free for `empty_cache` to return. Where CUDA was never initialised this does not
    start it.
    """
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
