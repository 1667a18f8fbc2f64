"""Typed architecture configuration of TogetherNet, saved inside our own checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_CLASS_NAMES: tuple[str, ...] = ("person", "bicycle", "car", "motorbike", "bus")


@dataclass(frozen=True)
class TogetherNetConfig:
    """Every hyper-parameter that shapes the network; all channel counts derive from these.

    The defaults are the published model (YOLOX-s multipliers, 5 VOC-FOG/RTTS classes). Only
    ``width=0.5, depth=0.33`` reproduces the upstream checkpoint layout; other multipliers build a
    consistent but upstream-incompatible network.
    """

    num_classes: int = 5
    depth: float = 0.33
    width: float = 0.5
    # YOLOX reference widths of the three pyramid levels before the width multiplier.
    pyramid_channels: tuple[int, int, int] = (256, 512, 1024)
    # YOLOX head width before the width multiplier.
    head_channels: int = 256
    spp_kernel_sizes: tuple[int, ...] = (5, 9, 13)
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03
    transformer_heads: int = 4
    transformer_layers: int = 1
    transformer_mlp_ratio: int = 4
    transformer_dropout: float = 0.1
    deform_kernel_size: int = 3
    # The published DCN is applied this many times with one set of weights.
    deform_repeats: int = 2
    sc_pooling: int = 4
    sc_negative_slope: float = 0.2
    decoder_upsample: int = 4
    decoder_kernel_size: int = 7
    image_channels: int = 3

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.width <= 0 or self.depth <= 0:
            raise ValueError(f"width and depth must be positive, got {self.width}, {self.depth}")
        if self.decoder_kernel_size % 2 != 1:
            raise ValueError(f"decoder_kernel_size must be odd, got {self.decoder_kernel_size}")

    # --- derived channel counts and depths -------------------------------------------------
    @property
    def stem_channels(self) -> int:
        """Output channels of the Focus stem (32 for YOLOX-s)."""
        return int(64 * self.width)

    @property
    def backbone_channels(self) -> tuple[int, int, int, int]:
        """Output channels of dark2..dark5 (64, 128, 256, 512 for YOLOX-s)."""
        base = self.stem_channels
        return (base * 2, base * 4, base * 8, base * 16)

    @property
    def backbone_depth(self) -> int:
        """Bottleneck count of the dark2/dark5 CSP layers (dark3/dark4 use three times this)."""
        return max(round(self.depth * 3), 1)

    @property
    def neck_depth(self) -> int:
        """Bottleneck count of the PAFPN CSP layers."""
        return round(3 * self.depth)

    @property
    def neck_channels(self) -> tuple[int, int, int]:
        """Channels of the P3/P4/P5 pyramid outputs (128, 256, 512 for YOLOX-s)."""
        return tuple(int(c * self.width) for c in self.pyramid_channels)  # type: ignore[return-value]

    @property
    def head_width(self) -> int:
        """Hidden width of the decoupled head (128 for YOLOX-s)."""
        return int(self.head_channels * self.width)

    @property
    def outputs_per_anchor(self) -> int:
        """Channels of each head map: 4 box, 1 objectness, then the class logits."""
        return 5 + self.num_classes

    # --- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (ints, floats, lists) that survives a ``weights_only`` pickle."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TogetherNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        if not isinstance(data, dict):
            raise ValueError(
                f"TogetherNetConfig.from_dict expects a dict, got {type(data).__name__}"
            )
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown TogetherNetConfig field(s): {', '.join(unknown)}")
        kwargs = {}
        for name, value in data.items():
            kwargs[name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)
