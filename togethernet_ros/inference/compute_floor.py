"""The compute floor: model FLOPs divided by this machine's fp32 matmul rate.

FLOPs are counted (2 x multiply-accumulates of every conv / matmul, via torch's FlopCounterMode)
on the published network layout (gather DCN, literal decoder tail): 46.98 GFLOP at 640x640 with
restoration, 34.55 without. Our fast model computes the same function with fewer FLOPs in the
decoder tail; that saving is credited to it, not subtracted from the floor.
"""

from __future__ import annotations

import time
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_gflops(model: nn.Module, input_size: tuple[int, int], restore: bool) -> float:
    """GFLOP (2 x MAC) of one forward pass of `model` on a single image."""
    height, width = input_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, height, width), restore=restore)
    return counter.get_total_flops() / 1e9


@lru_cache(maxsize=16)
def published_gflops(input_size: tuple[int, int], restore: bool, num_classes: int = 5) -> float:
    """GFLOP per image of the published TogetherNet at `input_size`."""
    from togethernet_ros.model import build_model

    model = build_model(num_classes=num_classes, deform_impl="gather").eval()
    return count_gflops(model, input_size, restore)


def measure_matmul_gflops(size: int = 2048, repeats: int = 5) -> list[float]:
    """fp32 GFLOP/s of `repeats` square matmuls (torch, current thread setting)."""
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=generator)
    right = torch.randn(size, size, generator=generator)
    product = torch.empty(size, size)
    torch.mm(left, right, out=product)  # warm-up: thread pool and packing buffers
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(left, right, out=product)
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    return rates
