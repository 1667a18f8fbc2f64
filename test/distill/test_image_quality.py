"""PSNR / SSIM on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.distill.image_quality import psnr, ssim


def test_psnr_of_a_constant_offset():
    reference = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(reference + 5, reference) == pytest.approx(10 * np.log10(255**2 / 25))
    assert psnr(reference, reference) == float("inf")


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)
    light = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ssim(light, image) > ssim(heavy, image) > 0.0
    # A global brightness change keeps structure: SSIM stays well above heavy noise.
    assert ssim(np.clip(image.astype(int) + 10, 0, 255).astype(np.uint8), image) > 0.9


def test_mismatched_images_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        ssim(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32))
