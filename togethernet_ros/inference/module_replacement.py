"""Swap submodules of an eval-mode model for inference forms, in place."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def replace_modules(
    model: nn.Module,
    matches: Callable[[nn.Module], bool],
    build: Callable[[nn.Module], nn.Module],
    purpose: str,
) -> list[nn.Module]:
    """Replace every submodule for which `matches` holds by `build(it)` (in eval mode).

    Returns the replacements. `purpose` names the caller in the error for a model in training
    mode: inference forms drop dropout and gradients, so they need eval-mode statistics.
    """
    if model.training:
        raise ValueError(f"{purpose} needs an eval-mode model")
    replacements = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if matches(child):
                replacement = build(child).eval()
                setattr(parent, name, replacement)
                replacements.append(replacement)
    return replacements
