"""Letterbox geometry, PIL agreement and upstream-identical normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from togethernet_ros.vision import preprocess as preprocess_module
from togethernet_ros.vision.letterbox import LetterboxInfo, letterbox, normalize_size
from togethernet_ros.vision.preprocess import preprocess_batch

from .synthetic_images import scene

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "forward_small_256.npz"


def upstream_letterbox(image_rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Upstream `resize_image` (PIL bicubic, centred paste on grey 128), written from its spec."""
    input_h, input_w = size_hw
    source = Image.fromarray(image_rgb)
    source_w, source_h = source.size
    scale = min(input_w / source_w, input_h / source_h)
    new_w, new_h = int(source_w * scale), int(source_h * scale)
    resized = source.resize((new_w, new_h), Image.BICUBIC)
    canvas = Image.new("RGB", (input_w, input_h), (128, 128, 128))
    canvas.paste(resized, ((input_w - new_w) // 2, (input_h - new_h) // 2))
    return np.asarray(canvas)


def upstream_normalise(image_rgb: np.ndarray) -> np.ndarray:
    pixels = image_rgb.astype(np.float32)
    pixels /= 255.0
    pixels -= np.array([0.485, 0.456, 0.406])
    pixels /= np.array([0.229, 0.224, 0.225])
    return pixels.transpose(2, 0, 1)


@pytest.mark.parametrize(
    ("source", "size", "resized", "offset"),
    [
        ((1080, 1920), (640, 640), (360, 640), (140, 0)),
        ((480, 640), (640, 640), (480, 640), (80, 0)),
        ((1080, 1920), (384, 640), (360, 640), (12, 0)),
        ((500, 333), (256, 256), (256, 170), (0, 43)),
        ((100, 100), (256, 384), (256, 256), (0, 64)),
    ],
)
def test_geometry_matches_upstream_int_and_centring(source, size, resized, offset):
    info = LetterboxInfo.compute(source, size)
    assert info.resized_size == resized
    assert info.offset == offset
    assert info.source_size == source and info.input_size == size


@pytest.mark.parametrize(
    ("source", "size"),
    [((1080, 1920), (640, 640)), ((300, 200), (256, 384)), ((480, 640), (256, 256))],
)
def test_letterbox_agrees_with_pil_bicubic(source, size):
    image = scene(*source, seed=3)
    ours, info = letterbox(image, size)
    reference = upstream_letterbox(image, size)
    difference = np.abs(ours.astype(int) - reference.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01
    top, left = info.offset
    height, width = info.resized_size
    padding = np.ones(ours.shape[:2], dtype=bool)
    padding[top : top + height, left : left + width] = False
    assert (ours[padding] == 128).all()


def test_preprocess_is_bit_identical_to_upstream_reference_input():
    reference = np.load(FIXTURE)["input"]
    generator = torch.Generator().manual_seed(1234)
    pixels = torch.randint(0, 256, (1, 256, 256, 3), generator=generator, dtype=torch.uint8)
    rgb = pixels.numpy()[0]
    from_rgb, _ = preprocess_batch([rgb], 256, color_order="rgb")
    from_bgr, _ = preprocess_batch([np.ascontiguousarray(rgb[..., ::-1])], 256, color_order="bgr")
    assert from_rgb.dtype == torch.float32
    np.testing.assert_array_equal(from_rgb.numpy(), reference)
    np.testing.assert_array_equal(from_bgr.numpy(), reference)


def test_preprocess_batch_of_mixed_sizes_matches_per_image_upstream_recipe():
    images = [scene(360, 640, seed=1), scene(200, 150, seed=2)]
    batch, infos = preprocess_batch(images, (256, 384), color_order="bgr")
    assert batch.shape == (2, 3, 256, 384)
    for index, image in enumerate(images):
        expected = upstream_normalise(upstream_letterbox(image[..., ::-1].copy(), (256, 384)))
        # One grey level of resampling difference is at most 1/255/0.224 after normalising.
        np.testing.assert_allclose(batch[index].numpy(), expected, atol=1 / 255 / 0.224 + 1e-6)
        assert infos[index].source_size == image.shape[:2]


@pytest.mark.parametrize("color_order", ["bgr", "rgb"])
def test_torch_normalisation_fallback_equals_opencv_path(monkeypatch, color_order):
    # The torch path is the one CUDA (and its graphs) run.
    images = [scene(300, 500, seed=4)]
    with_cv2, _ = preprocess_batch(images, 256, color_order=color_order)
    monkeypatch.setattr(preprocess_module, "cv2", None)
    without_cv2, _ = preprocess_batch(images, 256, color_order=color_order)
    assert torch.equal(with_cv2, without_cv2)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 10), dtype=np.uint8), "HxWx3"),
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        preprocess_batch([bad], 256)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="color_order"):
        preprocess_batch([scene(10, 10)], 256, color_order="hsv")
    with pytest.raises(ValueError, match="at least one"):
        preprocess_batch([], 256)
    with pytest.raises(ValueError, match="input size"):
        normalize_size((256, -1))


def test_two_pass_float_resize_matches_the_uint8_kernel_within_one_level():
    """The CUDA path's float resize must reproduce the CPU (PIL-style) result."""
    import torch
    import torch.nn.functional as F

    from togethernet_ros.vision.letterbox import resize_bicubic_two_pass

    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.integers(0, 256, (1, 3, 360, 500), dtype=np.uint8))
    for size in [(180, 250), (256, 356), (100, 400)]:
        reference = F.interpolate(image, size=size, mode="bicubic", antialias=True)
        two_pass = resize_bicubic_two_pass(image, size)
        difference = (two_pass.int() - reference.int()).abs()
        assert difference.max() <= 1, size
        assert (difference > 0).float().mean() < 0.02, size
