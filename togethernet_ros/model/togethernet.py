"""TogetherNet: joint dehazing and YOLOX detection (Wang et al., CGF 2022)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from togethernet_ros.model.config import TogetherNetConfig
from togethernet_ros.model.deformable import DEFORM_IMPLS
from togethernet_ros.model.head import YOLOXHead
from togethernet_ros.model.input_size import check_input_size
from togethernet_ros.model.neck import TogetherNetPAFPN


class ModelOutput(NamedTuple):
    """Raw network outputs.

    maps: three head maps at strides 8, 16, 32, each (N, 5 + num_classes, H/s, W/s) with
        channels [x, y, w, h, obj, cls...] before any sigmoid/exp.
    dehazed: restoration output after Tanh, (N, 3, H, W), ImageNet-normalised scale; None when
        restoration was switched off.
    """

    maps: list[torch.Tensor]
    dehazed: torch.Tensor | None


class TogetherNet(nn.Module):
    """Full model. Attribute names ``backbone``/``head`` give the upstream checkpoint keys."""

    strides: tuple[int, int, int] = (8, 16, 32)

    def __init__(
        self,
        config: TogetherNetConfig,
        deform_impl: str = "fast",
        restoration_impl: str = "fast",
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = TogetherNetPAFPN(config, deform_impl, restoration_impl)
        self.head = YOLOXHead(config)

    def forward(self, x: torch.Tensor, restore: bool = True) -> ModelOutput:
        """x: float32 (N, 3, H, W) RGB, letterboxed, ImageNet-normalised; H, W multiples of 128.

        Returns the same :class:`ModelOutput` in train and eval mode. ``restore=False`` skips
        the decoder; the detection maps do not depend on it.
        """
        if not torch.jit.is_tracing():  # shapes are fixed while tracing for export
            if x.dim() != 4 or x.shape[1] != self.config.image_channels:
                raise ValueError(
                    f"TogetherNet input must be (N, {self.config.image_channels}, H, W), "
                    f"got shape {tuple(x.shape)}"
                )
            if not x.is_floating_point():
                raise ValueError(
                    f"TogetherNet input must be a normalised float tensor, got {x.dtype}"
                )
            check_input_size((int(x.shape[2]), int(x.shape[3])))
        pyramid, (dark3, dark4, enhanced) = self.backbone(x)
        maps = self.head(pyramid)
        dehazed = self.backbone.decoder(enhanced, dark4, dark3) if restore else None
        return ModelOutput(maps, dehazed)


def build_model(
    num_classes: int | None = None,
    config: TogetherNetConfig | None = None,
    deform_impl: str = "fast",
    restoration_impl: str | None = None,
) -> TogetherNet:
    """Build TogetherNet with the upstream state_dict layout (keys, order, shapes).

    num_classes: defaults to ``config.num_classes``, or 5 without a config; a value that
        contradicts ``config`` is an error.
    deform_impl: ``"fast"`` (grid_sample + matmul, ONNX-exportable) or ``"gather"`` (the
        published gather-based DCN, the naive benchmark baseline).
    restoration_impl: ``"fast"`` or ``"published"`` decoder tail; defaults to ``"published"``
        with ``deform_impl="gather"`` (so that variant is the published model throughout) and
        ``"fast"`` otherwise.
    """
    if config is None:
        config = TogetherNetConfig(num_classes=5 if num_classes is None else num_classes)
    elif num_classes is not None and num_classes != config.num_classes:
        raise ValueError(
            f"num_classes={num_classes} contradicts config.num_classes={config.num_classes}"
        )
    if deform_impl not in DEFORM_IMPLS:
        raise ValueError(f"deform_impl must be one of {DEFORM_IMPLS}, got {deform_impl!r}")
    if restoration_impl is None:
        restoration_impl = "published" if deform_impl == "gather" else "fast"
    return TogetherNet(config, deform_impl=deform_impl, restoration_impl=restoration_impl)
