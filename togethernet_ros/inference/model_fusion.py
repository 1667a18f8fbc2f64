"""Every inference-only rewrite of TogetherNet's modules into fewer kernels, in one call.

The detector and the ONNX export run the model in these forms; each computes the published
function (tested against it) and gives the same checkpoint nothing new to load.
"""

from __future__ import annotations

from torch import nn

from togethernet_ros.inference.deformable_fusion import fuse_deformable_convs
from togethernet_ros.inference.head_fusion import fuse_heads
from togethernet_ros.inference.transformer_fusion import fuse_transformers


def fuse_for_inference(model: nn.Module) -> dict[str, int]:
    """Fuse, in place, the DTFE's deformable conv and transformer and the head's predictions.

    Returns how many modules of each kind were rewritten. The model must be in eval mode.
    """
    return {
        "deformable_convs": fuse_deformable_convs(model),
        "transformer_layers": fuse_transformers(model),
        "heads": fuse_heads(model),
    }
