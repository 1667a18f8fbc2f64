"""COCO → model class mapping."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.distill.coco_classes import COCO_CLASS_NAMES, coco_index, map_coco_classes
from togethernet_ros.vision.detections import Detections


def test_default_mapping_covers_the_five_voc_fog_classes():
    mapping = map_coco_classes()
    assert len(COCO_CLASS_NAMES) == 80
    assert mapping.describe() == {
        "person": "person",
        "bicycle": "bicycle",
        "car": "car",
        "motorcycle": "motorbike",
        "bus": "bus",
    }


def test_apply_renumbers_and_drops_unmapped_classes():
    coco = [COCO_CLASS_NAMES.index(n) for n in ("bus", "truck", "dog", "motorcycle", "person")]
    found = Detections(
        np.arange(20, dtype=np.float32).reshape(5, 4), [0.9, 0.8, 0.7, 0.6, 0.5], coco
    )
    plain = map_coco_classes().apply(found)
    assert plain.class_ids.tolist() == [4, 3, 0]
    np.testing.assert_allclose(plain.scores, [0.9, 0.6, 0.5])
    np.testing.assert_allclose(plain.boxes[1], [12, 13, 14, 15])
    with_truck = map_coco_classes(truck_as="car").apply(found)
    assert with_truck.class_ids.tolist() == [4, 2, 3, 0]
    assert len(map_coco_classes().apply(Detections.empty())) == 0


def test_voc_spellings_custom_merges_and_errors():
    assert coco_index("aeroplane") == COCO_CLASS_NAMES.index("airplane")
    mapping = map_coco_classes(("person", "vehicle"), extra={"car": "vehicle", "bus": "vehicle"})
    assert mapping.describe() == {"person": "person", "car": "vehicle", "bus": "vehicle"}
    with pytest.raises(ValueError, match="'vehicle' is not a COCO class"):
        map_coco_classes(("person", "vehicle"))
    with pytest.raises(ValueError, match="not one of the model classes"):
        map_coco_classes(truck_as="lorry")
