"""PinnedStaging: frames reach the device tensor intact, pinned or not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from togethernet_ros.inference.pinned_staging import PinnedStaging


def frame(seed: int, shape=(72, 128, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_without_page_locked_memory_it_warns_once_and_copies_from_pageable_memory(caplog):
    if torch.cuda.is_available():
        pytest.skip("page-locked memory is available here")
    staging = PinnedStaging(slots=2)
    target = torch.zeros((72, 128, 3), dtype=torch.uint8)
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        for seed in range(3):
            image = frame(seed)
            staging.upload(seed % 2, image, target)
            np.testing.assert_array_equal(target.numpy(), image)
    assert not staging.pinned
    assert len([r for r in caplog.records if "page-locked" in r.message]) == 1


def test_a_frame_of_another_shape_is_refused_with_both_shapes():
    staging = PinnedStaging(slots=1)
    target = torch.zeros((72, 128, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\(720, 1280, 3\).*\(72, 128, 3\)"):
        staging.upload(0, frame(0, (720, 1280, 3)), target)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_uploads_of_growing_and_strided_frames_arrive_intact():
    staging = PinnedStaging(slots=2)
    for seed, shape in enumerate([(72, 128, 3), (144, 256, 3), (72, 128, 3)]):
        image = frame(seed, shape)[:, ::-1]  # a negative-stride view, as cv2 flips give
        target = torch.empty(shape, dtype=torch.uint8, device="cuda")
        staging.upload(seed % 2, image, target)
        np.testing.assert_array_equal(target.cpu().numpy(), image)
    assert staging.pinned
    staging.close()
