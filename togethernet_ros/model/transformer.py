"""The DTFE transformer: a pre-norm transformer layer inside a CSP layer (C3TR)."""

from __future__ import annotations

import torch
from torch import nn

from togethernet_ros.model.blocks import CSPLayer


class TransformerLayer(nn.Module):
    """Pre-LayerNorm attention + ReLU MLP, both residual.

    Bias-free q/k/v projections feed ``nn.MultiheadAttention``, which projects once more with
    its own ``in_proj`` (redundant, but it is the published parameterisation).
    """

    def __init__(self, channels: int, num_heads: int, mlp_ratio: int = 4, dropout: float = 0.1):
        super().__init__()
        self.layernorm1 = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels, bias=False)
        self.k = nn.Linear(channels, channels, bias=False)
        self.v = nn.Linear(channels, channels, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=channels, num_heads=num_heads)
        self.layernorm2 = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, mlp_ratio * channels, bias=False)
        self.fc2 = nn.Linear(mlp_ratio * channels, channels, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (tokens, batch, channels) -> same shape."""
        normed = self.layernorm1(x)
        x = x + self.ma(self.q(normed), self.k(normed), self.v(normed), need_weights=False)[0]
        hidden = self.dropout(self.act(self.fc1(self.layernorm2(x))))
        return x + self.dropout(self.fc2(hidden))


class TransformerBlock(nn.Module):
    """Tokenise a feature map, add the per-token 'position embedding' p + Linear(p), run layers."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        num_layers: int,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.tr = nn.Sequential(
            *(TransformerLayer(channels, num_heads, mlp_ratio, dropout) for _ in range(num_layers))
        )
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W); one token per pixel, row-major."""
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).permute(2, 0, 1)  # (H*W, N, C), the layout MultiheadAttention wants
        tokens = self.tr(tokens + self.linear(tokens))
        return tokens.permute(1, 2, 0).reshape(batch, channels, height, width)


class C3TR(CSPLayer):
    """CSP layer whose processed branch is a :class:`TransformerBlock` at half the width."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_heads: int = 4,
        num_layers: int = 1,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
        **bn,
    ) -> None:
        super().__init__(in_channels, out_channels, num_blocks=0, **bn)
        self.m = TransformerBlock(out_channels // 2, num_heads, num_layers, mlp_ratio, dropout)
