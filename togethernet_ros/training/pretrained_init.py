"""Initialise the shared parts of TogetherNet from an upstream TogetherNet or a YOLOX-s checkpoint.

Accepted layouts: our own checkpoints, upstream TogetherNet ``train.py`` state_dicts, Megvii
YOLOX (``{"model": state_dict}``, keys ``backbone.backbone.dark2...`` / ``head.*``) and
bubbliiiing's yolox-pytorch (plain state_dict, same key names); optional ``module.`` prefixes.
Tensors are copied where name and shape agree; everything else is listed, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from togethernet_ros.model.checkpoint import read_checkpoint_file


@dataclass
class InitReport:
    """What a partial initialisation did."""

    loaded: list[str] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self, max_names: int = 12) -> str:
        """Counts plus the first names of each kind (printed by the trainer)."""
        lines = [
            f"init: loaded {len(self.loaded)} tensors; not in checkpoint {len(self.not_in_checkpoint)};"
            f" shape mismatch {len(self.shape_mismatch)}; unused checkpoint keys {len(self.unused)}"
        ]
        for title, names in (
            ("not loaded (absent from checkpoint)", self.not_in_checkpoint),
            ("not loaded (shape mismatch)", self.shape_mismatch),
            ("unused checkpoint keys", self.unused),
        ):
            if names:
                shown = ", ".join(names[:max_names])
                more = f" ... (+{len(names) - max_names})" if len(names) > max_names else ""
                lines.append(f"  {title}: {shown}{more}")
        return "\n".join(lines)


def extract_state_dict(raw: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a loaded checkpoint and strip ``module.`` prefixes."""
    state = raw
    for key in ("state_dict", "model", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{source}: no state_dict found (top-level type {type(raw).__name__})")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{source}: the state_dict holds no tensors")
    return {key.removeprefix("module."): value for key, value in tensors.items()}


def load_shared_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Copy every checkpoint tensor whose key and shape match ``model``; report the rest."""
    raw = read_checkpoint_file(path)
    source = extract_state_dict(raw, str(path))
    target = model.state_dict()
    report = InitReport()
    update = {}
    for key, value in target.items():
        if key not in source:
            report.not_in_checkpoint.append(key)
        elif source[key].shape != value.shape:
            report.shape_mismatch.append(f"{key} {tuple(source[key].shape)}→{tuple(value.shape)}")
        else:
            update[key] = source[key].to(value.dtype)
            report.loaded.append(key)
    report.unused = sorted(set(source) - set(target))
    target.update(update)
    model.load_state_dict(target, strict=True)
    return report
