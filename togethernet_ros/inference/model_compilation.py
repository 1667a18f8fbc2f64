"""`torch.compile` of the model for the torch backend (opt-in).

TorchDetector's own CUDA graphs already remove Python's launch overhead; what is left at batch
1 on a GPU is the GPU time of a long chain of small kernels. Inductor fuses the pointwise work
between convolutions (activations, residual adds, the DTFE module's elementwise steps), so
fewer, larger kernels read and write activations fewer times. The compiled module is captured
into the detector's CUDA graphs like the eager one, so the modes that add Inductor's own CUDA
graphs ("reduce-overhead", "max-autotune") are refused.

Shapes are static: every (batch size, restore) pair is compiled once, on first use (tens of
seconds each; Inductor keeps its kernels in an on-disk cache, so later runs start faster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing torch is slow; the CLI reads COMPILE_MODES for --help
    from torch import nn

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def check_compile_mode(mode: str | None) -> str | None:
    """Return `mode` if it is None or a supported `torch.compile` mode, else raise ValueError."""
    if mode is None or mode in COMPILE_MODES:
        return mode
    raise ValueError(
        f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r} (modes with "
        "Inductor's own CUDA graphs would clash with the detector's)"
    )


def compile_for_inference(model: nn.Module, mode: str, variants: int) -> nn.Module:
    """`torch.compile` `model` for static shapes, with room for `variants` compiled graphs.

    Dynamo keeps at most `recompile_limit` graphs per function and runs eagerly beyond it;
    the detector needs one per batch size and restore setting, so the process-wide limit is
    raised to `variants` when lower.
    """
    import torch
    import torch._dynamo

    check_compile_mode(mode)
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, variants)
    return torch.compile(model, mode=mode, dynamic=False)
