"""ModelEMA's fused update against the per-tensor formula it replaced."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from togethernet_ros.training.model_ema import ModelEMA


def _small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.SiLU(), nn.Conv2d(8, 4, 1))


def _reference_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """The former ModelEMA.update body: per-entry mul_/add_, copy for non-float buffers."""
    current = model.state_dict()
    with torch.no_grad():
        for name, value in average.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(current[name].detach(), alpha=1 - decay)
            else:
                value.copy_(current[name])


def _perturb(model: nn.Module, generator: torch.Generator) -> None:
    """Change weights and BN statistics in place, as a training step would."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
        model(torch.randn(2, 3, 6, 6, generator=generator))  # train mode: BN buffers move


def test_fused_update_matches_per_tensor_formula():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = _small_model().train()
    ema = ModelEMA(model, decay=0.99, ramp=3.0)
    reference = copy.deepcopy(ema.module)
    for update in range(1, 6):
        _perturb(model, generator)
        ema.update(model)
        _reference_update(reference, model, 0.99 * (1 - math.exp(-update / 3.0)))
    expected = reference.state_dict()
    for name, value in ema.module.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-6)
    assert int(ema.module[1].num_batches_tracked) == 5  # non-float buffer copied


def test_update_follows_wrapped_model_and_restored_state():
    generator = torch.Generator().manual_seed(2)
    model = _small_model().train()
    ema = ModelEMA(model)
    wrapper = nn.Module()
    wrapper.module = model  # like DistributedDataParallel
    _perturb(model, generator)
    ema.update(wrapper)
    restored = ModelEMA(_small_model())
    restored.update(model)  # lists built before the load must not go stale after it
    restored.load_state_dict(ema.state_dict())
    _perturb(model, generator)
    ema.update(model)
    restored.update(model)
    for name, value in ema.module.state_dict().items():
        assert torch.equal(value, restored.module.state_dict()[name])
