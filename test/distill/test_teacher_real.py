"""The real teacher: NanoDet-m-416 from npm, converted by our code, on real photos and video."""

from __future__ import annotations

import numpy as np
import pytest
from support.sample_video_frames import sample_video, video_frame

from togethernet_ros.distill.coco_classes import COCO_CLASS_NAMES, map_coco_classes
from togethernet_ros.vision.fog import add_fog

from .real_inputs import bus_photo, real_teacher

PERSON, BUS = COCO_CLASS_NAMES.index("person"), COCO_CLASS_NAMES.index("bus")


@pytest.fixture(scope="module")
def teacher():
    return real_teacher(conf_threshold=0.3)


def test_bus_photo_gives_the_bus_and_the_people(teacher):
    image = bus_photo()
    (found,) = teacher.detect([image])
    buses = found.select(found.class_ids == BUS)
    people = found.select((found.class_ids == PERSON) & (found.scores >= 0.4))
    assert len(buses) >= 1 and buses.scores[0] >= 0.5
    # The bus fills most of the 810-px-wide photo; the four people stand in front of it.
    x1, y1, x2, y2 = buses.boxes[0]
    assert x2 - x1 > 0.8 * image.shape[1] and y1 < 300 < 700 < y2
    assert len(people) >= 4
    assert np.all(people.boxes[:, 3] - people.boxes[:, 1] > 250)  # standing pedestrians
    # Fog (atmospheric scattering) lowers the teacher's confidence, as the notes measured.
    (foggy,) = teacher.detect([add_fog(image, 0.1)])
    foggy_bus = foggy.scores[foggy.class_ids == BUS]
    assert len(foggy_bus) == 0 or foggy_bus.max() < buses.scores[0]


def test_vtest_frame_gives_several_pedestrians(teacher):
    frame = video_frame(sample_video(), 700)
    (found,) = teacher.detect([frame])
    people = found.select((found.class_ids == PERSON) & (found.scores >= 0.5))
    assert len(people) >= 5
    heights = people.boxes[:, 3] - people.boxes[:, 1]
    assert np.all((heights > 40) & (heights < 200))  # people on the campus path, 768×576 frame
    mapped = map_coco_classes(truck_as="car").apply(found)
    assert set(mapped.class_ids.tolist()) <= {0, 1, 2, 3, 4}
    assert (mapped.class_ids == 0).sum() == (found.class_ids == PERSON).sum()


def test_batched_detection_equals_one_by_one(teacher):
    image = bus_photo()
    frame = video_frame(sample_video(), 10)
    together = teacher.detect([image, frame], batch_size=2)
    alone = [teacher.detect([image])[0], teacher.detect([frame])[0]]
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_allclose(batched.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, single.scores, atol=1e-5)
