"""Training's validation mAP is eval's mAP for the same weights, on real frames.

The demo weights on vtest frames cropped to an awkward size (the letterbox does not fit
evenly, so get_map.py's box rounding differs from the exact inverse) with VOC boxes of which
one reaches outside the image (training's reader clips it, eval scores it as written) and
whole-pixel truncation (eval's default against VOC): every difference between the two paths
would show in the mAP.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support.sample_video_frames import HELDOUT_FRAME, TEACHER_PERSONS, sample_video, video_frame

from togethernet_ros.cli import main
from togethernet_ros.evaluation.detection_files import load_detections
from togethernet_ros.model import load_checkpoint
from togethernet_ros.training.paired_dataset import VocFogDataset
from togethernet_ros.training.validation import predict_dataset, validation_map
from togethernet_ros.training.voc_xml import write_voc_xml

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "togethernet_vtest_384.pt"
INPUT_SIZE = (384, 512)


def write_dataset(root: Path) -> None:
    """Two crops of the held-out frame (700x530 and 708x536) with its persons, as VOC."""
    frame = video_frame(sample_video(), HELDOUT_FRAME)
    for folder in ("JPEGImages", "FOG", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    crops = {"left": (0, 0, 700, 530), "right": (60, 40, 768, 576)}
    names = ["person", "bicycle", "car", "motorbike", "bus"]
    for image_id, (x0, y0, x1, y1) in crops.items():
        image = np.ascontiguousarray(frame[y0:y1, x0:x1])
        for folder in ("JPEGImages", "FOG"):
            cv2.imwrite(str(root / folder / f"{image_id}.png"), image)
        boxes = TEACHER_PERSONS - [x0, y0, x0, y0]
        # The frame's sixth person (x 681-737) reaches past the left crop's right edge.
        write_voc_xml(
            root / "Annotations" / f"{image_id}.xml",
            f"{image_id}.png",
            x1 - x0,
            y1 - y0,
            boxes,
            np.zeros(len(boxes), np.int64),
            names,
        )
    (root / "ImageSets" / "Main" / "val.txt").write_text("left\nright\n")


def test_validation_map_is_evals_on_awkward_real_frames(tmp_path, capsys):
    root = tmp_path / "voc"
    write_dataset(root)
    loaded = load_checkpoint(WEIGHTS)
    dataset = VocFogDataset(root, "val", loaded.class_names)
    assert dataset.issues.counts().get("box clipped") == 1  # the reader's view differs
    validated = validation_map(
        loaded.model, dataset, loaded.class_names, INPUT_SIZE, torch.device("cpu")
    )
    out = tmp_path / "eval"
    height, width = INPUT_SIZE
    args = ["eval", "--voc-root", str(root), "--image-set", "val", "--weights", str(WEIGHTS)]
    args += ["--input-size", f"{height}x{width}", "--out-dir", str(out)]
    args += ["--save-detections", str(tmp_path / "detections.json"), "--no-coco", "--no-plots"]
    assert main(args) == 0
    capsys.readouterr()
    evaluated = json.loads((out / "metrics.json").read_text())["voc"]
    assert 0.3 < evaluated["ap"]["person"] < 1.0  # found, not trivially: a score to compare
    assert validated["num_gt"] == evaluated["num_gt"]
    assert validated["whole_pixel_boxes"] is evaluated["whole_pixel_boxes"] is True
    # The validation's model is not folded and fused like eval's detector: scores can differ
    # in the last bits, which at most reorders near-equal detections.
    assert validated["ap"]["person"] == pytest.approx(evaluated["ap"]["person"], abs=1e-6)

    # The boxes themselves, which an IoU of 0.5 hardly tells apart: not clipped (the left
    # crop's last person reaches past its edge) and mapped back with get_map.py's rounding
    # (700x530 into 384x512 is off by 0.7 px with the exact inverse).
    detections, _ = predict_dataset(loaded.model, dataset, INPUT_SIZE, torch.device("cpu"))
    saved = load_detections(tmp_path / "detections.json").detections
    assert sorted(detections) == sorted(saved) == ["left", "right"]
    for image_id, found in detections.items():
        mine, theirs = confident(found), confident(saved[image_id])
        assert len(mine) == len(theirs) > 5
        np.testing.assert_allclose(mine, theirs, atol=0.02)
    # An unclipped box past the left crop's 700-pixel edge took part.
    assert confident(detections["left"])[:, 2].max() > 700


def confident(found) -> np.ndarray:
    """Boxes scoring >= 0.1, strongest first: clear of the 0.001 threshold's numeric noise."""
    keep = found.scores >= 0.1
    return found.boxes[keep][np.argsort(-found.scores[keep], kind="stable")]


def test_shards_merge_into_the_whole_and_unreadable_images_are_left_out(tmp_path, caplog):
    from togethernet_ros.model import TogetherNetConfig, build_model
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

    classes = ["person", "bicycle", "car"]
    scenes = SyntheticFogDataset(5, 128, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes)
    dataset = VocFogDataset(root, "train", classes)
    broken = dataset.records[3].hazy_path
    broken.write_bytes(b"not an image")  # became unreadable after the dataset was read
    torch.manual_seed(0)
    model = build_model(config=TogetherNetConfig(num_classes=3, width=0.125))
    cpu = torch.device("cpu")
    # Batches of one: the same arithmetic per image in every shard (a batch's size picks the
    # CPU kernels, which moves scores in their last bits).
    whole, truth = predict_dataset(model, dataset, (128, 128), cpu, batch_size=1)
    assert broken.stem not in whole and broken.stem not in truth
    assert len(whole) == len(truth) == 4
    assert "validation: 1 unreadable images left out" in caplog.text
    shards = [
        predict_dataset(model, dataset, (128, 128), cpu, batch_size=1, shard=(index, 3))
        for index in range(3)
    ]
    merged = {key: found for found, _ in shards for key, found in found.items()}
    assert sorted(merged) == sorted(whole)
    for key, found in whole.items():
        np.testing.assert_array_equal(merged[key].boxes, found.boxes)
    with pytest.raises(ValueError, match="shard must be"):
        predict_dataset(model, dataset, (128, 128), cpu, shard=(3, 3))
