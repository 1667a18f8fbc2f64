"""Frame sources, pseudo-label filtering, the prepared dataset and the fogged training samples."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from togethernet_ros.distill.coco_classes import COCO_CLASS_NAMES, map_coco_classes
from togethernet_ros.distill.foggy_pairs import FoggyPseudoLabelled, FogSettings
from togethernet_ros.distill.frame_sources import count_frames, iter_source_frames
from togethernet_ros.distill.pseudo_labels import (
    PseudoLabelSettings,
    filter_pseudo_labels,
    label_frames,
    load_pseudo_labels,
)
from togethernet_ros.training.training_batches import AugmentedPairs, collate_pairs
from togethernet_ros.vision.detections import Detections


class ScriptedTeacher:
    """Stands in for NanoDet: fixed COCO detections whose x position follows the frame's mark."""

    conf_threshold = 0.3

    def detect(self, images):
        results = []
        for image in images:
            shift = float(image[0, 0, 0])  # each test frame stores its number here
            boxes = [
                [10 + shift, 20, 40 + shift, 90],  # person 0.9
                [50, 50, 90, 70],  # car 0.6
                [5, 5, 7, 7],  # person 0.8 but 2 px: too small
                [0, 0, 30, 30],  # dog 0.95: not a model class
                [60, 10, 100, 40],  # motorcycle 0.45
            ]
            ids = [COCO_CLASS_NAMES.index(n) for n in ("person", "car", "person", "dog")]
            ids.append(COCO_CLASS_NAMES.index("motorcycle"))
            results.append(Detections(boxes, [0.9, 0.6, 0.8, 0.95, 0.45], ids))
        return results


def _image_folder(path, count=10):
    path.mkdir()
    rng = np.random.default_rng(1)
    for index in range(count):
        image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        image[0, 0] = index
        cv2.imwrite(str(path / f"frame_{index:03d}.png"), image)
    return path


def test_image_folder_frames_and_holdout(tmp_path):
    folder = _image_folder(tmp_path / "clips")
    frames = list(iter_source_frames(folder, frame_step=1, holdout_fraction=0.2))
    assert [f.index for f in frames] == list(range(10))
    assert [f.index for f in frames if f.heldout] == [8, 9]
    assert frames[3].image[0, 0, 0] == 3 and frames[0].source == "clips"
    thinned = list(iter_source_frames(folder, frame_step=3, holdout_fraction=0.2))
    assert [(f.index, f.heldout) for f in thinned] == [
        (0, False),
        (3, False),
        (6, False),
        (9, True),
    ]
    assert len(list(iter_source_frames(folder, max_frames=5))) == 5
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(iter_source_frames(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="holdout_fraction"):
        list(iter_source_frames(folder, holdout_fraction=1.0))


def test_video_frames_hold_out_the_last_fifth(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(15):
        writer.write(np.full((48, 64, 3), index * 10, np.uint8))
    writer.release()
    assert count_frames(path) == 15
    frames = list(iter_source_frames(path))
    assert [f.index for f in frames if f.heldout] == [12, 13, 14]
    bad = tmp_path / "not_a_video.avi"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot open video|no readable frames"):
        count_frames(bad)


def test_label_frames_filters_maps_and_round_trips(tmp_path):
    folder = _image_folder(tmp_path / "clips")
    settings = PseudoLabelSettings(conf_threshold=0.5, class_thresholds={"car": 0.7})
    label_set = label_frames(
        iter_source_frames(folder),
        ScriptedTeacher(),
        map_coco_classes(),
        settings,
        tmp_path / "prepared",
        info={"sources": ["clips"]},
    )
    assert len(label_set.frames) == 10 and len(label_set.split(heldout=True)) == 2
    frame = label_set.frames[4]
    # Person kept (0.9); car dropped by its own 0.7 threshold; the 2-px box, the dog and the
    # motorcycle below 0.5 dropped.
    assert frame.labels.tolist() == [0]
    np.testing.assert_allclose(frame.boxes, [[14, 20, 44, 90]])
    assert label_set.label_counts() == {
        "person": 10,
        "bicycle": 0,
        "car": 0,
        "motorbike": 0,
        "bus": 0,
    }
    clear = label_set.read_clear_bgr(frame)
    assert clear.shape == (96, 128, 3)
    loaded = load_pseudo_labels(tmp_path / "prepared")
    assert loaded.class_names == label_set.class_names and loaded.info["sources"] == ["clips"]
    for before, after in zip(label_set.frames, loaded.frames, strict=True):
        assert (before.image, before.heldout) == (after.image, after.heldout)
        np.testing.assert_allclose(before.boxes, after.boxes, atol=0.01)
    labels_path = tmp_path / "prepared" / "labels.json"
    payload = json.loads(labels_path.read_text())
    payload["frames"][0]["labels"] = [7]
    labels_path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="outside 5 classes"):
        load_pseudo_labels(tmp_path / "prepared")
    with pytest.raises(FileNotFoundError, match="not a prepared distillation dataset"):
        load_pseudo_labels(tmp_path / "clips")


def test_fogged_samples_are_random_per_variant_reproducible_and_train_ready(tmp_path):
    folder = _image_folder(tmp_path / "clips")
    label_set = label_frames(
        iter_source_frames(folder),
        ScriptedTeacher(),
        map_coco_classes(),
        PseudoLabelSettings(conf_threshold=0.4),
        tmp_path / "prepared",
    )
    fog = FogSettings(beta_min=0.05, beta_max=0.15, airlight=0.8, airlight_jitter=0.0)
    dataset = FoggyPseudoLabelled(label_set, label_set.split(heldout=False), fog, fog_variants=3)
    assert len(dataset) == 8 * 3
    hazy, clean, boxes, labels, difficult, image_id = dataset[4]
    assert hazy.shape == clean.shape == (96, 128, 3) and hazy.dtype == np.uint8
    stored = label_set.read_clear_bgr(label_set.frames[1])
    np.testing.assert_array_equal(clean, stored[:, :, ::-1])  # the trainer wants RGB
    assert boxes.shape == (3, 4) and labels.tolist() == [0, 2, 3]  # person, car, motorbike
    assert not difficult.any() and image_id == "clips_000001_v1"
    # Fog pulls pixels towards the bright airlight.
    assert hazy.astype(float).mean() > clean.astype(float).mean() + 20
    np.testing.assert_array_equal(dataset[4][0], hazy)
    betas = [dataset.fog_parameters(i)[0] for i in range(len(dataset))]
    assert all(0.05 <= b <= 0.15 for b in betas) and len(set(betas)) == len(betas)
    # Each epoch fogs a frame anew (the trainer indexes by epoch), reproducibly.
    assert dataset.fog_parameters(4, epoch=1) != dataset.fog_parameters(4, epoch=0)
    np.testing.assert_array_equal(dataset[(1, 4)][0], dataset[(1, 4)][0])
    assert not np.array_equal(dataset[(1, 4)][0], hazy)
    pairs = AugmentedPairs(dataset, (128, 128), seed=0, augment=False)
    np.testing.assert_array_equal(pairs[(0, 4)][0], pairs[(0, 4)][0])
    assert not torch.equal(pairs[(0, 4)][0], pairs[(1, 4)][0])  # the epoch reached the fog
    hazy_t, clean_t, targets = collate_pairs([pairs[(0, 4)], pairs[(0, 5)]])
    assert hazy_t.shape == clean_t.shape == (2, 3, 128, 128)
    assert all(t.shape[1] == 5 for t in targets)
    with pytest.raises(ValueError, match="no frames"):
        FoggyPseudoLabelled(label_set, [], fog)


def test_one_label_per_object_across_classes():
    names = ("person", "bicycle", "car", "motorbike", "bus")
    van = [100.0, 100.0, 200.0, 160.0]
    detections = Detections(
        boxes=[
            van,
            [101, 101, 201, 161],
            [102, 99, 199, 160],
            [300, 100, 340, 200],
            [302, 102, 342, 202],
        ],
        scores=[0.55, 0.42, 0.50, 0.9, 0.8],
        class_ids=[2, 4, 2, 0, 0],
    )
    kept = filter_pseudo_labels(detections, names, PseudoLabelSettings(conf_threshold=0.4))
    # The bus box on the car is one object named twice: only the car (higher score) stays.
    # Same-class overlaps are the teacher's NMS decision and are left alone here.
    assert sorted(
        zip(kept.class_ids.tolist(), [round(float(v), 2) for v in kept.scores], strict=True)
    ) == [
        (0, 0.8),
        (0, 0.9),
        (2, 0.5),
        (2, 0.55),
    ]
    both = filter_pseudo_labels(
        detections, names, PseudoLabelSettings(conf_threshold=0.4, duplicate_iou=0)
    )
    assert 4 in both.class_ids.tolist()


def test_folder_frames_are_read_on_the_stored_grid_like_every_other_reader(tmp_path):
    # An EXIF-tagged photo is labelled as stored (not turned for display), as predict, eval
    # and the training datasets read the same file.
    from support.exif_jpeg import white_block_photo

    folder = tmp_path / "photos"
    folder.mkdir()
    data, stored = white_block_photo(6)
    (folder / "IMG_0001.JPG").write_bytes(data)
    (frame,) = iter_source_frames(folder, frame_step=1, holdout_fraction=0.5)
    assert frame.image.shape == (40, 80, 3)
    assert np.abs(frame.image.astype(int) - stored.astype(int)).mean() < 3


def test_a_frame_that_cannot_be_written_stops_labelling_with_its_path(tmp_path):
    folder = _image_folder(tmp_path / "clips", count=3)
    first = next(iter(iter_source_frames(folder)))
    # A directory where the image goes: imwrite fails (as on a full disk) even for root.
    blocked = tmp_path / "prepared" / "images" / f"{first.file_stem()}.jpg"
    blocked.mkdir(parents=True)
    with pytest.raises(OSError, match=rf"cannot write pseudo-labelled frame .*{blocked.name}"):
        label_frames(
            iter_source_frames(folder),
            ScriptedTeacher(),
            map_coco_classes(),
            PseudoLabelSettings(conf_threshold=0.5),
            tmp_path / "prepared",
        )
    assert not (tmp_path / "prepared" / "labels.json").exists()
