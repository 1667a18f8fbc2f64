"""Exponential moving average of model weights (YOLOX's ModelEMA, ramped decay)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Keeps ``ema = d·ema + (1−d)·model`` with d = decay·(1 − exp(−updates/ramp)).

    The ramp makes early EMA weights follow the model closely. Buffers (BN statistics) are
    averaged the same way when floating point.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: float = 2000.0):
        self.module = copy.deepcopy(_unwrap(model)).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = 0
        self._pairs: _TensorPairs | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average."""
        self.updates += 1
        decay = self.decay * (1 - math.exp(-self.updates / self.ramp))
        pairs = self._tensor_pairs(_unwrap(model))
        # Same two ops as ``ema.mul_(d).add_(x, alpha=1 - d)`` per tensor, but a handful of
        # fused launches for all ~600 tensors instead of two each (the step is launch-bound).
        torch._foreach_mul_(pairs.ema_float, decay)
        torch._foreach_add_(pairs.ema_float, pairs.model_float, alpha=1 - decay)
        if pairs.ema_other:
            torch._foreach_copy_(pairs.ema_other, pairs.model_other)

    def _tensor_pairs(self, model: nn.Module) -> _TensorPairs:
        """The matching state_dict tensors of average and model, listed once per model.

        Training updates them in place, so the lists stay valid while the model object is the
        same. Moving either model with ``.to()`` after the first update would replace buffers
        behind the lists; build a new ``ModelEMA`` (or load a state) after such a move.
        """
        pairs = self._pairs
        if pairs is not None and pairs.model is model:
            return pairs
        current = model.state_dict(keep_vars=True)
        pairs = _TensorPairs(model)
        for name, value in self.module.state_dict(keep_vars=True).items():
            if value.dtype.is_floating_point:
                pairs.ema_float.append(value)
                pairs.model_float.append(current[name])
            else:
                pairs.ema_other.append(value)
                pairs.model_other.append(current[name])
        self._pairs = pairs
        return pairs

    def state_dict(self) -> dict:
        """Weights plus the update count (for exact resume)."""
        return {"weights": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
        self._pairs = None


class _TensorPairs:
    """EMA tensors and the model tensors they follow, split into floating and other."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.ema_float: list[torch.Tensor] = []
        self.model_float: list[torch.Tensor] = []
        self.ema_other: list[torch.Tensor] = []
        self.model_other: list[torch.Tensor] = []


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
