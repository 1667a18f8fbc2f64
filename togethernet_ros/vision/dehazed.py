"""Restoration output (Tanh, ImageNet-normalised space) -> uint8 images at the source size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, check_color_order

try:  # OpenCV resizes uint8 faster than torch on CPU; torch is the fallback.
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is absent
    cv2 = None


def dehazed_to_images(
    dehazed: torch.Tensor, infos: Sequence[LetterboxInfo], color_order: str = "bgr"
) -> list[np.ndarray]:
    """N x 3 x H x W restoration output -> N uint8 HxWx3 images at their source sizes.

    Recovers pixels as (out * std + mean) * 255 (the network was trained against normalised
    clean images), clips, crops away the letterbox padding, resizes to the source size
    (bilinear when enlarging, area-averaging when shrinking) and returns channels in
    `color_order` like the input images.
    """
    order = check_color_order(color_order)
    if dehazed.ndim != 4 or dehazed.shape[1] != 3:
        raise ValueError(f"dehazed must have shape N x 3 x H x W, got {tuple(dehazed.shape)}")
    if len(infos) != dehazed.shape[0]:
        raise ValueError(f"got {len(infos)} letterbox infos for {dehazed.shape[0]} dehazed images")
    device = dehazed.device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    pixels = dehazed.float() * std + mean
    if order == "bgr":
        pixels = pixels.flip(1)
    resize_on_device = device.type != "cpu" or cv2 is None
    if not resize_on_device:
        # Quantise at network resolution first; the cheap uint8 resize follows on the CPU.
        pixels = pixels.round_().clamp_(0, 255).to(torch.uint8)
    images = []
    for index, info in enumerate(infos):
        top, left = info.offset
        height, width = info.resized_size
        crop = pixels[index : index + 1, :, top : top + height, left : left + width]
        if resize_on_device:
            if tuple(crop.shape[-2:]) != info.source_size:
                if _shrinks(info):
                    # Not bilinear with antialias=True: its CUDA kernel refuses large factors
                    # (a frame of a few pixels), which would fail the whole batch.
                    crop = F.interpolate(crop, size=info.source_size, mode="area")
                else:
                    crop = F.interpolate(
                        crop, size=info.source_size, mode="bilinear", align_corners=False
                    )
            image = crop.round().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
            images.append(np.ascontiguousarray(image.cpu().numpy()))
        else:
            image = np.ascontiguousarray(crop[0].permute(1, 2, 0).numpy())
            if image.shape[:2] != info.source_size:
                source_h, source_w = info.source_size
                interpolation = cv2.INTER_AREA if _shrinks(info) else cv2.INTER_LINEAR
                image = cv2.resize(image, (source_w, source_h), interpolation=interpolation)
            images.append(image)
    return images


def _shrinks(info: LetterboxInfo) -> bool:
    """Whether un-letterboxing shrinks the crop (a source smaller than the network input).

    Bilinear shrinking reads only the 2 x 2 network pixels nearest each output pixel, so
    pixel-level restoration artefacts (the decoder's transposed convolutions leave a
    checkerboard) alias into moire; averaging the whole footprint removes them.
    """
    resized_h, resized_w = info.resized_size
    source_h, source_w = info.source_size
    return resized_h > source_h or resized_w > source_w
