"""Fog synthesis follows I = J·t + A·(1−t), t = exp(−β·d), d = −0.04·‖p − c‖ + √max(H, W)."""

import numpy as np
import pytest

from togethernet_ros.vision.fog import add_fog, depth_proxy


def test_depth_proxy_matches_recipe_at_centre_and_corner():
    depth = depth_proxy(100, 200)
    assert depth[50, 100] == pytest.approx(np.sqrt(200))
    assert depth[0, 0] == pytest.approx(-0.04 * np.hypot(50, 100) + np.sqrt(200), rel=1e-6)


def test_add_fog_per_pixel_formula_and_limits():
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert np.array_equal(add_fog(image, 0.0), image)  # β = 0: no fog
    beta, airlight = 0.1, 0.6
    foggy = add_fog(image, beta, airlight)
    t = np.exp(-beta * depth_proxy(40, 60))[..., None]
    expected = np.rint((image / 255.0 * t + airlight * (1 - t)) * 255)
    assert np.abs(foggy.astype(int) - expected).max() <= 1
    # Dense fog converges to the airlight everywhere.
    assert np.abs(add_fog(image, 50.0, airlight).astype(int) - round(0.6 * 255)).max() <= 1
    # Fog is densest at the centre (largest depth): contrast shrinks there most.
    assert foggy[20, 30].std() <= image[20, 30].std() + 1


def test_add_fog_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        add_fog(np.zeros((4, 4, 3), np.float32), 0.1)
    with pytest.raises(ValueError, match="airlight"):
        add_fog(np.zeros((4, 4, 3), np.uint8), 0.1, airlight=2.0)


def test_depth_stops_at_zero_on_frames_larger_than_the_recipe_was_made_for():
    # 4000x3000: the recipe's corner depth would be -0.04 * 2500 + sqrt(4000) = -36.8, where
    # exp(-beta * d) > 1 would turn a grey corner white instead of foggy.
    depth = depth_proxy(3000, 4000)
    assert depth.min() == 0.0 and depth[1500, 2000] == pytest.approx(np.sqrt(4000.0))
    grey = np.full((3000, 4000, 3), 100, np.uint8)
    foggy = add_fog(grey, 0.1, airlight=0.5, depth=depth)
    assert foggy[0, 0].tolist() == [100, 100, 100]  # no fog, not brightened
    # VOC-sized frames are the recipe itself, untouched.
    assert depth_proxy(375, 500).min() > 0
