"""Fold the DTFE transformer's back-to-back linear maps together (inference only).

The published `TransformerLayer` projects the normed tokens with bias-free q, k and v Linears
and then feeds them to `nn.MultiheadAttention`, which projects each once more with its
`in_proj`: two matmuls in a row per input, six in all. `TransformerBlock` adds a "position
embedding" p + Linear(p). Both are linear maps that fold exactly (up to float rounding):

- in_proj(q(x)) = x (W_in W_q)^T + b_in, so one packed (3C x C) projection gives q, k and v;
- p + Linear(p) = p (I + W)^T + b, one addmm instead of a matmul and an add.

`fuse_transformers` rewrites a model in place: the 17 ops of the DTFE transformer become 11.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from togethernet_ros.inference.module_replacement import replace_modules
from togethernet_ros.model.transformer import TransformerBlock, TransformerLayer


class FusedTransformerLayer(nn.Module):
    """Inference form of `TransformerLayer`: the same function with one packed projection."""

    def __init__(self, layer: TransformerLayer) -> None:
        super().__init__()
        attention = layer.ma
        channels = attention.embed_dim
        self.num_heads = attention.num_heads
        self.layernorm1 = layer.layernorm1
        self.layernorm2 = layer.layernorm2
        self.fc1, self.fc2, self.act = layer.fc1, layer.fc2, layer.act
        _check_plain_attention(attention)  # which also means one packed in_proj_weight
        in_bias = attention.in_proj_bias
        qkv = nn.Linear(
            channels,
            3 * channels,
            bias=in_bias is not None,
            device=layer.q.weight.device,
            dtype=layer.q.weight.dtype,
        )
        with torch.no_grad():
            # float64 products, so the fold adds one rounding, not a chain of them.
            folded = [
                (in_weight.double() @ own.weight.double()).to(own.weight.dtype)
                for in_weight, own in zip(
                    attention.in_proj_weight.chunk(3), (layer.q, layer.k, layer.v), strict=True
                )
            ]
            qkv.weight.copy_(torch.cat(folded))
            if in_bias is not None:
                qkv.bias.copy_(in_bias)
        self.qkv = qkv.requires_grad_(False)
        self.out_proj = attention.out_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (tokens, batch, channels) -> same shape."""
        tokens, batch, channels = x.shape
        heads = self.num_heads
        # (T, N, 3C) -> three (N, heads, T, C / heads) views, the layout SDPA takes.
        qkv = self.qkv(self.layernorm1(x)).view(tokens, batch, 3, heads, channels // heads)
        query, key, value = qkv.permute(2, 1, 3, 0, 4).unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.permute(2, 0, 1, 3).reshape(tokens, batch, channels)
        x = x + self.out_proj(attended)
        return x + self.fc2(self.act(self.fc1(self.layernorm2(x))))


class FusedTransformerBlock(nn.Module):
    """Inference form of `TransformerBlock`: p + Linear(p) as one addmm, fused layers."""

    def __init__(self, block: TransformerBlock) -> None:
        super().__init__()
        source = block.linear
        embedding = nn.Linear(
            source.in_features,
            source.out_features,
            bias=source.bias is not None,
            device=source.weight.device,
            dtype=source.weight.dtype,
        )
        with torch.no_grad():
            identity = torch.eye(
                source.in_features, dtype=torch.float64, device=embedding.weight.device
            )
            embedding.weight.copy_((source.weight.double() + identity).to(source.weight.dtype))
            if source.bias is not None:
                embedding.bias.copy_(source.bias)
        self.embedding = embedding.requires_grad_(False)
        layers = []
        for layer in block.tr:
            if not isinstance(layer, TransformerLayer):
                raise ValueError(f"cannot fuse a {type(layer).__name__} inside a TransformerBlock")
            layers.append(FusedTransformerLayer(layer))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W); one token per pixel, row-major."""
        batch, channels, height, width = x.shape
        tokens = self.layers(self.embedding(x.flatten(2).permute(2, 0, 1)))
        return tokens.permute(1, 2, 0).reshape(batch, channels, height, width)


def fuse_transformers(model: nn.Module) -> int:
    """Replace, in place, every `TransformerBlock` by a `FusedTransformerBlock`.

    Returns the number of transformer layers fused. The model must be in eval mode (dropout
    off): the fused layers have no dropout.
    """
    blocks = replace_modules(
        model,
        lambda module: isinstance(module, TransformerBlock),
        FusedTransformerBlock,  # type: ignore[arg-type]
        "fuse_transformers",
    )
    return sum(len(block.layers) for block in blocks)  # type: ignore[arg-type]


def _check_plain_attention(attention: nn.MultiheadAttention) -> None:
    if attention.batch_first or attention.bias_k is not None or attention.add_zero_attn:
        raise ValueError("fuse_transformers supports MultiheadAttention as TogetherNet builds it")
    if attention.kdim != attention.embed_dim or attention.vdim != attention.embed_dim:
        raise ValueError("fuse_transformers needs key and value widths equal to the embedding")
