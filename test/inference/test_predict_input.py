"""`togethernet predict` on awkward sources: empty videos, clashing names, links, its own outputs."""

from __future__ import annotations

import copy
import json
import os
import tracemalloc

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import main

from .conftest import scene


def _predict(checkpoint, source, output, *options: str) -> int:
    common = ["--weights", str(checkpoint), "--input-size", "128", "--device", "cpu"]
    return main(["predict", *common, "--source", str(source), "--output", str(output), *options])


def test_a_video_without_frames_is_an_error_not_an_empty_success(tmp_path, checkpoint_path, capsys):
    video = tmp_path / "empty.avi"
    cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120)).release()
    output = tmp_path / "out"
    assert _predict(checkpoint_path, video, output) == 2
    assert f"video {video} has no readable frames" in capsys.readouterr().err
    assert not output.exists()  # refused before anything was written


def test_images_sharing_a_stem_keep_their_own_outputs(tmp_path, checkpoint_path):
    source = tmp_path / "frames"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), scene(96, 128, seed=1))
    cv2.imwrite(str(source / "a.jpg"), scene(80, 112, seed=2))
    cv2.imwrite(str(source / "b.png"), scene(64, 64, seed=3))
    output = tmp_path / "out"
    assert _predict(checkpoint_path, source, output) == 0
    report = json.loads((output / "detections.json").read_text())
    assert [record["source"] for record in report["images"]] == ["a.jpg", "a.png", "b"]
    for name, shape in {"a.jpg": (80, 112, 3), "a.png": (96, 128, 3), "b": (64, 64, 3)}.items():
        assert cv2.imread(str(output / "annotated" / f"{name}.jpg")).shape == shape
        assert cv2.imread(str(output / "dehazed" / f"{name}.png")).shape == shape


def test_broken_links_are_reported_as_skipped_and_folders_ignored(
    tmp_path, checkpoint_path, capsys
):
    source = tmp_path / "frames"
    source.mkdir()
    cv2.imwrite(str(source / "good.png"), scene(64, 96, seed=1))
    os.symlink(tmp_path / "gone.png", source / "dangling.png")
    (source / "nested.png").mkdir()  # a folder named like an image is not an image
    output = tmp_path / "out"
    assert _predict(checkpoint_path, source, output) == 0
    report = json.loads((output / "detections.json").read_text())
    assert [record["source"] for record in report["images"]] == ["good"]
    assert [entry["source"] for entry in report["skipped"]] == [str(source / "dangling.png")]
    assert "1 images, 1 unreadable skipped" in capsys.readouterr().out


def test_outputs_never_replace_the_source_images(tmp_path, checkpoint_path, capsys):
    source = tmp_path / "frames"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), scene(64, 96, seed=1))
    output = tmp_path / "out"
    assert _predict(checkpoint_path, source, output) == 0
    dehazed = output / "dehazed" / "a.png"
    before = dehazed.read_bytes()
    # Detecting on the dehazed results, into the same run folder, would write over them.
    assert _predict(checkpoint_path, output / "dehazed", output) == 2
    assert f"would overwrite the source image {dehazed}" in capsys.readouterr().err
    assert dehazed.read_bytes() == before
    # Without dehazed outputs nothing clashes.
    assert _predict(checkpoint_path, output / "dehazed", output, "--no-dehazed") == 0


def test_bad_counts_and_an_output_file_are_refused_by_name(tmp_path, checkpoint_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), scene(64, 64))
    for option in ("--max-frames", "--batch-size"):
        with pytest.raises(SystemExit):
            _predict(checkpoint_path, image, tmp_path / "out", option, "0")
        assert f"argument {option}: must be >= 1, got 0" in capsys.readouterr().err
    assert _predict(checkpoint_path, image, image) == 2
    assert f"--output {image} is a file" in capsys.readouterr().err


def test_a_detection_only_export_gives_detections_and_belongs_to_its_weights(
    tmp_path, checkpoint_path, informative_model, caplog, capsys
):
    import torch

    from togethernet_ros.model import DEFAULT_CLASS_NAMES
    from togethernet_ros.model.checkpoint import save_checkpoint

    onnx = tmp_path / "m.onnx"
    export = ["export", "--weights", str(checkpoint_path), "--output", str(onnx)]
    assert main([*export, "--input-size", "128", "--variant", "detect", "--no-verify"]) == 0
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), scene(120, 160, seed=4))
    output = tmp_path / "out"
    options = ["--backend", "onnxruntime", "--onnx", str(onnx)]
    # Dehazed output is the default, but this export cannot make it: detections still come.
    assert _predict(checkpoint_path, images, output, *options) == 0
    assert "no restoration variant: no dehazed images are written" in caplog.text
    report = json.loads((output / "detections.json").read_text())
    assert report["onnx"] == str(onnx) and [r["source"] for r in report["images"]] == ["a"]
    assert not (output / "dehazed").exists()
    # `togethernet export` records the weights' hash: other weights are refused, not replaced.
    # A copy: the session's model is shared, and adding then subtracting 1.0 does not restore
    # float32 weights bit for bit.
    other = copy.deepcopy(informative_model)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    retrained = save_checkpoint(tmp_path / "other.pt", other, DEFAULT_CLASS_NAMES)
    capsys.readouterr()
    assert _predict(retrained, images, tmp_path / "out2", *options) == 2
    assert "was exported from other weights" in capsys.readouterr().err


def test_exif_tagged_photos_are_predicted_on_the_grid_their_labels_use(
    tmp_path, monkeypatch, capsys
):
    # The boxes in detections.json and on the annotated image are on the stored pixel grid,
    # as `eval` and the training datasets read the same file (no EXIF turn).
    from support.exif_jpeg import BLOCK_BOX, white_block_photo
    from support.stand_in_detectors import BrightBlockDetector

    import togethernet_ros.inference.factory as factory

    source = tmp_path / "photos"
    source.mkdir()
    for orientation in (6, 8):
        (source / f"IMG_{orientation}.JPG").write_bytes(white_block_photo(orientation)[0])
    classes = ("person", "bicycle", "car", "motorbike", "bus")
    monkeypatch.setattr(
        factory, "create_detector", lambda weights, **o: BrightBlockDetector(classes, "bgr")
    )
    output = tmp_path / "out"
    assert (
        main(["predict", "--weights", "w.pt", "--source", str(source), "--output", str(output)])
        == 0
    )
    report = json.loads((output / "detections.json").read_text())
    for record in report["images"]:
        assert (record["width"], record["height"]) == (80, 40)
        assert record["detections"][0]["box_xyxy"] == list(BLOCK_BOX)
        assert cv2.imread(str(output / "annotated" / f"{record['source']}.jpg")).shape == (
            40,
            80,
            3,
        )
    capsys.readouterr()


class _ManyBoxes:
    """Ten boxes on every frame; raises on frame ``fail_at`` (counted from 0) when given."""

    class_names = ("person", "bicycle", "car", "motorbike", "bus")
    input_size = (128, 128)
    backend = "stand-in"
    supports_restoration = False

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.frames = 0

    def detect(self, images, restore: bool = False):
        from support.stand_in_detectors import StandInResult

        from togethernet_ros.vision.detections import Detections

        results = []
        for _ in images:
            if self.frames == self.fail_at:
                raise RuntimeError("the detector failed")
            self.frames += 1
            corners = np.arange(10, dtype=np.float32)[:, None] * np.float32([1, 1])
            boxes = np.concatenate([corners, corners + 5], axis=1)
            found = Detections(boxes, np.full(10, 0.75, np.float32), np.zeros(10, np.int64))
            results.append(StandInResult(found, None))
        return results

    def close(self) -> None:
        pass


def _video(path, frames: int):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 32))
    for _ in range(frames):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    return path


def _predict_stand_in(monkeypatch, detector, video, output) -> int:
    import togethernet_ros.inference.factory as factory

    monkeypatch.setattr(factory, "create_detector", lambda weights, **options: detector)
    args = ["--source", str(video), "--output", str(output), "--no-annotated", "--no-dehazed"]
    return main(["predict", "--weights", "w.pt", *args])


def test_a_long_video_streams_its_detections_to_the_file(tmp_path, monkeypatch):
    # An hour of video is some 100,000 records: kept for one write at the end, gigabytes.
    _predict_stand_in(monkeypatch, _ManyBoxes(), _video(tmp_path / "warm.avi", 1), tmp_path / "w")
    video = _video(tmp_path / "long.avi", 1000)
    tracemalloc.start()
    try:
        assert _predict_stand_in(monkeypatch, _ManyBoxes(), video, tmp_path / "out") == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = (tmp_path / "out" / "detections.json").read_text()
    report = json.loads(text)
    assert text == json.dumps(report, indent=1)  # the document as it always was
    assert len(report["images"]) == 1000 and report["skipped"] == []
    assert [len(image["detections"]) for image in report["images"]] == [10] * 1000
    assert report["images"][-1]["frame"] == 999 and report["backend"] == "stand-in"
    # Held to the end, the 1000 records took 17 MiB.
    assert peak < 4 * 2**20, f"predict held {peak / 2**20:.1f} MiB"
    assert not (tmp_path / "out" / "detections.json.part").exists()


def test_a_run_that_fails_midway_keeps_the_detections_done_so_far(tmp_path, monkeypatch, capsys):
    video = _video(tmp_path / "clip.avi", 12)
    assert _predict_stand_in(monkeypatch, _ManyBoxes(fail_at=7), video, tmp_path / "out") == 2
    assert "the detector failed" in capsys.readouterr().err
    assert not (tmp_path / "out" / "detections.json").exists()  # never a complete-looking file
    part = (tmp_path / "out" / "detections.json.part").read_text()
    assert part.count('"source": "clip_') == 7 and '"frame": 6' in part
    # Nothing done: nothing left behind.
    assert _predict_stand_in(monkeypatch, _ManyBoxes(fail_at=0), video, tmp_path / "none") == 2
    assert not (tmp_path / "none" / "detections.json.part").exists()


def test_max_frames_counts_the_images_read_not_the_files_skipped(tmp_path):
    from togethernet_ros.inference.media import MediaSource

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(4):
        cv2.imwrite(str(folder / f"f{index}.png"), np.full((8, 8, 3), index, np.uint8))
    (folder / "f0b.png").write_bytes(b"not a png")  # sorts second
    source = MediaSource(folder, max_frames=3)
    assert [frame.name for frame in source] == ["f0", "f1", "f2"]
    assert [skipped.path.name for skipped in source.skipped] == ["f0b.png"]
