"""SGD with weight decay on conv/linear/attention weights only (norm weights and biases free).

Upstream sorted parameters by ``isinstance(module, nn.BatchNorm2d) or "bn" in name``, which
left ``MultiheadAttention.in_proj_weight`` and ``in_proj_bias`` in no group at all (never
trained). Here every parameter lands in exactly one group, decided by its role, and that is
checked. One deliberate difference: upstream's name test missed the transformer's two
LayerNorms (``layernorm1/2``), so it decayed their 2 × 256 weights; here a norm's scale is
free of decay like every BatchNorm's, as the published recipe states it (decay on conv and
linear weights only).
"""

from __future__ import annotations

import torch
from torch import nn

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def split_decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed weights, non-decayed norm weights and biases) covering every trainable parameter."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            if isinstance(module, NORM_TYPES) or name.endswith("bias") or parameter.ndim < 2:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if trainable != seen:
        raise RuntimeError(f"{len(trainable - seen)} parameters in no optimizer group")
    return decay, no_decay


def build_sgd(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool = True
) -> torch.optim.SGD:
    """The published optimizer: SGD (Nesterov) with decoupled decay groups."""
    decay, no_decay = split_decay_groups(model)
    return torch.optim.SGD(
        [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay},
        ],
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
    )
