"""Random weights whose outputs depend clearly on the input, for tests and benchmarks.

PyTorch's default init gives near-constant head outputs, which would let a broken export or
pre-processing pass unnoticed. These use the gains of the reference fill rule
(../shared/reference/togethernet/README.md), drawn in module order from one seeded generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def fill_informative(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill `model` in place with informative random weights; returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d | nn.LayerNorm):
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.copy_(
                        0.1 * torch.randn(module.running_mean.shape, generator=generator)
                    )
                    module.running_var.copy_(
                        0.5 + torch.rand(module.running_var.shape, generator=generator)
                    )
                continue
            for name, parameter in module.named_parameters(recurse=False):
                if parameter.ndim >= 2:
                    fan_in = math.prod(parameter.shape[1:])
                    parameter.copy_(
                        torch.randn(parameter.shape, generator=generator) * 1.3 / math.sqrt(fan_in)
                    )
                elif name.endswith("bias"):
                    parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model.eval()
