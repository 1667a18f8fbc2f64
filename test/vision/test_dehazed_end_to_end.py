"""The dehazed image end to end: detect(restore=True) through a real TorchDetector.

The network is either TogetherNet with the reference weights (its restoration output is known
from the upstream reference data) or a stand-in whose "restoration" is known exactly: the
normalised input itself, optionally plus a one-pixel checkerboard like the artefacts that
transposed convolutions leave. Either way the dehazed image a user gets can be predicted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model.reference_fill import SMALL_REFERENCE_PATH, reference_state_dict
from torch import nn

from togethernet_ros.inference.torch_detector import TorchDetector
from togethernet_ros.model import build_model
from togethernet_ros.model.togethernet import ModelOutput
from togethernet_ros.vision import dehazed as dehazed_module
from togethernet_ros.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD

from .synthetic_images import scene

CLASSES = ("person", "bicycle", "car", "motorbike", "bus")
INPUT_SIZE = (384, 640)


class KnownRestoration(nn.Module):
    """No detections; the "dehazed" output is the normalised input plus `checker_levels`.

    The checkerboard alternates +/- `checker_levels` grey levels from one network pixel to the
    next, in every channel.
    """

    def __init__(self, checker_levels: float = 0.0) -> None:
        super().__init__()
        self.checker_levels = checker_levels
        self.unused = nn.Parameter(torch.zeros(1))  # the detector moves the model's parameters

    def forward(self, x: torch.Tensor, restore: bool = True) -> ModelOutput:
        batch, _, height, width = x.shape
        maps = [
            torch.full((batch, 5 + len(CLASSES), height // s, width // s), -20.0, dtype=x.dtype)
            for s in (8, 16, 32)
        ]
        if not restore:
            return ModelOutput(maps, None)
        rows = torch.arange(height).view(-1, 1)
        cols = torch.arange(width).view(1, -1)
        sign = ((rows + cols) % 2) * 2 - 1
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        checker = sign * (self.checker_levels / 255.0) / std
        return ModelOutput(maps, x + checker.to(x.dtype))


def known_restoration_detector(
    checker_levels: float = 0.0, color_order: str = "bgr", max_batch_size: int = 4
) -> TorchDetector:
    return TorchDetector(
        KnownRestoration(checker_levels),
        CLASSES,
        input_size=INPUT_SIZE,
        color_order=color_order,
        fold_bn=False,
        fuse_modules=False,
        max_batch_size=max_batch_size,
    )


def mean_error(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


@pytest.mark.parametrize("color_order", ["bgr", "rgb"])
def test_reference_restoration_output_becomes_the_published_image(color_order):
    # forward_small_256.npz holds upstream's Tanh output for a known 256 x 256 RGB image; the
    # published recovery is (out * std + mean) * 255 per RGB channel, clipped.
    reference = np.load(SMALL_REFERENCE_PATH)
    rgb = torch.randint(
        0, 256, (1, 256, 256, 3), generator=torch.Generator().manual_seed(1234), dtype=torch.uint8
    )[0].numpy()
    model = build_model(num_classes=5)
    model.load_state_dict(reference_state_dict(), strict=False)
    detector = TorchDetector(model, CLASSES, input_size=(256, 256), color_order=color_order)
    image = rgb if color_order == "rgb" else np.ascontiguousarray(rgb[..., ::-1])
    (result,) = detector.detect([image], restore=True)
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD).reshape(3, 1, 1)
    published = np.clip(np.round((reference["dehaze"][0] * std + mean) * 255), 0, 255)
    expected = published.transpose(1, 2, 0).astype(np.uint8)
    if color_order == "bgr":
        expected = expected[..., ::-1]
    assert result.dehazed.shape == (256, 256, 3) and result.dehazed.dtype == np.uint8
    difference = np.abs(result.dehazed.astype(int) - expected.astype(int))
    # Float noise of BN folding may tip a value sitting on a rounding boundary by one level.
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


@pytest.mark.parametrize("color_order", ["bgr", "rgb"])
def test_every_frame_of_a_mixed_batch_gets_its_own_image_back(color_order):
    # Landscape, portrait, odd sizes, a strip, the input size itself and a small frame, split
    # over two batches, one letterboxed ahead: an identity restoration must give each source
    # back, unshifted (a one-pixel shift of the crop costs more than the resampling does).
    sizes = [(480, 640), (641, 359), (384, 640), (721, 1281), (97, 1001), (240, 320)]
    frames = [scene(height, width, seed=index) for index, (height, width) in enumerate(sizes)]
    detector = known_restoration_detector(color_order=color_order, max_batch_size=4)
    assert detector.prepare_ahead("side", frames[1])
    results = detector.detect(frames, restore=True)
    for frame, result in zip(frames, results, strict=True):
        restored = result.dehazed
        assert restored.shape == frame.shape and restored.dtype == np.uint8
        error = mean_error(restored, frame)
        assert error < 0.5, f"{frame.shape}: mean error {error:.2f}"
        for shifted, original in (
            (restored[1:], frame[:-1]),
            (restored[:-1], frame[1:]),
            (restored[:, 1:], frame[:, :-1]),
            (restored[:, :-1], frame[:, 1:]),
        ):
            assert mean_error(shifted, original) > error
    # The frame of the input size is not resampled at all.
    np.testing.assert_array_equal(results[2].dehazed, frames[2])


@pytest.mark.parametrize("resize_with", ["opencv", "torch"])
@pytest.mark.parametrize("source", [(240, 320), (100, 150)])
def test_a_small_frame_is_shrunk_back_without_aliasing(monkeypatch, resize_with, source):
    # A camera smaller than the network input is enlarged into it, so its dehazed image is
    # shrunk back. Bilinear shrinking reads 2 x 2 of the ~2.5 x 2.5 (or ~15 x 15) network
    # pixels behind each output pixel: a +/-20 level checkerboard in the restoration came out
    # as moire of 4.6-5 levels on average (up to 18-33); averaging the footprint leaves ~1.
    if resize_with == "torch":  # the path CUDA tensors take
        monkeypatch.setattr(dehazed_module, "cv2", None)
    frame = scene(*source, seed=7)
    clean = known_restoration_detector(0.0).detect([frame], restore=True)[0].dehazed
    checkered = known_restoration_detector(20.0).detect([frame], restore=True)[0].dehazed
    assert mean_error(clean, frame) < 1.0  # the pattern is the only difference
    error = mean_error(checkered, frame)
    assert error < 1.5, f"dehazed image differs from its source by {error:.2f} levels on average"


def test_a_bad_frame_in_a_split_batch_is_named_by_its_index_in_the_call():
    # Batches are split at max_batch_size; the error named the index within the last batch
    # (images[1] for the fourth image), after the first batch had been run for nothing.
    detector = known_restoration_detector(max_batch_size=2)
    frames = [scene(64, 96, seed=index) for index in range(3)] + [np.zeros((64, 96), np.uint8)]
    with pytest.raises(ValueError, match=r"^images\[3\] must have shape HxWx3, got \(64, 96\)$"):
        detector.detect(frames, restore=True)


@pytest.mark.parametrize("resize_with", ["opencv", "torch"])
def test_a_frame_of_a_few_pixels_gets_its_colours_back(monkeypatch, resize_with):
    # Shrinking by ~100x (96 x 96 network pixels behind each source pixel) must still work.
    # One colour: the letterbox's bicubic enlargement rings at edges, which is not ours to test.
    if resize_with == "torch":
        monkeypatch.setattr(dehazed_module, "cv2", None)
    frame = np.full((4, 6, 3), (30, 140, 220), np.uint8)
    (result,) = known_restoration_detector(20.0).detect([frame], restore=True)
    assert result.dehazed.shape == frame.shape
    assert np.abs(result.dehazed.astype(int) - frame.astype(int)).max() <= 1
