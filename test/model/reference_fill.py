"""The reference data's deterministic weight fill rule and fixture locations (test helper)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPEC_PATH = FIXTURES / "state_dict_spec.json"
SMALL_REFERENCE_PATH = FIXTURES / "forward_small_256.npz"
# The large 640x640 reference is not committed; it sits next to the repository when available.
SHARED_REFERENCE_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "togethernet"
LARGE_REFERENCE_PATH = SHARED_REFERENCE_DIR / "forward_ref.npz"


def load_spec() -> dict:
    """The ordered upstream state_dict description."""
    return json.loads(SPEC_PATH.read_text())


def fill_entry(entry: dict) -> torch.Tensor | None:
    """Tensor for one spec entry by the README's rule (seed = entry index); None for 'skip'."""
    rule = entry["fill"]
    if rule == "skip":
        return None
    shape = entry["shape"]
    generator = torch.Generator().manual_seed(entry["index"])
    if rule == "weight":
        return torch.randn(shape, generator=generator) * 1.3 / math.sqrt(math.prod(shape[1:]))
    if rule == "bias":
        return torch.randn(shape, generator=generator) * 0.02
    if rule == "norm_weight":
        return 1 + 0.1 * torch.randn(shape, generator=generator)
    if rule in ("norm_bias", "bn_running_mean"):
        return 0.1 * torch.randn(shape, generator=generator)
    if rule == "bn_running_var":
        return 0.5 + torch.rand(shape, generator=generator)
    raise ValueError(f"unknown fill rule {rule!r} for {entry['key']}")


def reference_state_dict(spec: dict | None = None) -> dict[str, torch.Tensor]:
    """The filled state_dict (integer counters omitted, as the rule says)."""
    spec = spec or load_spec()
    filled = {}
    for entry in spec["entries"]:
        tensor = fill_entry(entry)
        if tensor is not None:
            filled[entry["key"]] = tensor
    return filled
