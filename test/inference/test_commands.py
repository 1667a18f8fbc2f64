"""`togethernet predict` and `togethernet bench` end to end (CPU, 256x256, tiny workloads)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.oversized_jpeg import jpeg_claiming_size

from togethernet_ros.cli import main
from togethernet_ros.inference.compute_floor import published_gflops
from togethernet_ros.model import DEFAULT_CLASS_NAMES

from .conftest import scene


def test_predict_on_a_folder_writes_json_annotated_and_dehazed_images(
    tmp_path, checkpoint_path, capsys
):
    source = tmp_path / "frames"
    source.mkdir()
    shapes = {"a": (240, 320), "b": (200, 150)}
    for name, (height, width) in shapes.items():
        cv2.imwrite(str(source / f"{name}.png"), scene(height, width, seed=len(name)))
    (source / "notes.txt").write_text("not an image")
    output = tmp_path / "out"
    status = main(
        [
            "predict",
            "--weights",
            str(checkpoint_path),
            "--source",
            str(source),
            "--output",
            str(output),
            "--input-size",
            "256",
            "--conf",
            "0.3",
            "--nms",
            "0.45",
            "--batch-size",
            "2",
        ]
    )
    assert status == 0
    report = json.loads((output / "detections.json").read_text())
    assert report["class_names"] == list(DEFAULT_CLASS_NAMES)
    # No --device: predict's default "auto" takes a GPU where torch sees one (fp16 there).
    gpu = __import__("torch").cuda.is_available()
    assert report["backend"] == ("torch-cuda-fp16" if gpu else "torch-cpu-fp32")
    assert report["untrained"] is False
    assert [record["source"] for record in report["images"]] == ["a", "b"]
    assert sum(len(record["detections"]) for record in report["images"]) > 0
    for record in report["images"]:
        height, width = shapes[record["source"]]
        assert (record["height"], record["width"]) == (height, width)
        for detection in record["detections"]:
            x1, y1, x2, y2 = detection["box_xyxy"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert detection["score"] >= 0.3
            assert detection["class_name"] == DEFAULT_CLASS_NAMES[detection["class_id"]]
        annotated = cv2.imread(str(output / "annotated" / f"{record['source']}.jpg"))
        dehazed = cv2.imread(str(output / "dehazed" / f"{record['source']}.png"))
        assert annotated.shape == dehazed.shape == (height, width, 3)
    assert "2 images" in capsys.readouterr().out


def test_predict_on_a_video_writes_two_videos(tmp_path, checkpoint_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for index in range(3):
        writer.write(scene(120, 160, seed=index))
    writer.release()
    output = tmp_path / "out"
    status = main(
        [
            "predict",
            "--weights",
            str(checkpoint_path),
            "--source",
            str(video),
            "--output",
            str(output),
            "--input-size",
            "256",
        ]
    )
    assert status == 0
    report = json.loads((output / "detections.json").read_text())
    assert [record["frame"] for record in report["images"]] == [0, 1, 2]
    for name in ("clip_annotated.mp4", "clip_dehazed.mp4"):
        capture = cv2.VideoCapture(str(output / name))
        frames = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (120, 160, 3)
            frames += 1
        capture.release()
        assert frames == 3


def test_predict_refuses_without_weights_and_rejects_bad_input(tmp_path, capsys):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    output = str(tmp_path / "out")
    assert main(["predict", "--source", str(image), "--output", output]) == 2
    assert "--allow-untrained" in capsys.readouterr().err
    missing = tmp_path / "nope.png"
    assert main(["predict", "--allow-untrained", "--source", str(missing), "--output", output]) == 2
    assert f"source not found: {missing}" in capsys.readouterr().err
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"garbage")
    assert (
        main(["predict", "--weights", str(broken), "--source", str(image), "--output", output]) == 2
    )
    assert "broken.pth" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a multiple of 128
        main(
            [
                "predict",
                "--allow-untrained",
                "--source",
                str(image),
                "--output",
                output,
                "--input-size",
                "300",
            ]
        )


def test_bench_reports_latency_throughput_and_floor_ratio(tmp_path, checkpoint_path, capsys):
    report_path = tmp_path / "bench.json"
    status = main(
        [
            "bench",
            "--weights",
            str(checkpoint_path),
            "--backends",
            "torch",
            # auto reached the baseline unresolved and failed after the main detectors built.
            "--device",
            "auto",
            "--input-sizes",
            "256",
            "--batch-sizes",
            "1",
            "--rounds",
            "1",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--threads",
            "2",
            "--no-rss",
            "--matmul-size",
            "512",
            "--json",
            str(report_path),
        ]
    )
    assert status == 0
    table = capsys.readouterr().out
    assert "x floor" in table and "baseline" in table and "restoration off saves" in table
    report = json.loads(report_path.read_text())
    assert report["matmul_gflops"]["max"] > 0
    rows = {(row["label"], row["restore"]): row for row in report["results"]}
    assert set(rows) == {("torch", True), ("torch", False), ("baseline", True)}
    for row in rows.values():
        latency = row["latency_ms"]
        assert row["iterations"] == 2
        assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"]
        assert row["throughput_ips"] == pytest.approx(1000 / latency["p50"])
        floor_ms = (
            published_gflops((256, 256), row["restore"]) / report["matmul_gflops"]["max"] * 1e3
        )
        assert row["floor_ms"] == pytest.approx(floor_ms)
        assert row["floor_ratio"] == pytest.approx(row["per_image_ms"] / floor_ms)
    flops = report["flops"]["256x256"]
    assert flops["ours_detect"] == pytest.approx(flops["published_detect"])
    assert flops["ours_restore"] < flops["published_restore"]


def test_published_flop_count_matches_the_notes():
    # The notes give 47.1 GFLOP (2 x MAC of convs and matmuls) at 640x640 with restoration.
    # Convolutions dominate, so the count scales with the pixel count; 256x256 keeps it quick.
    scaled = published_gflops((256, 256), True) * (640 * 640) / (256 * 256)
    assert scaled == pytest.approx(47.1, rel=0.02)
    assert published_gflops((256, 256), False) < 0.75 * published_gflops((256, 256), True)


def test_predict_skips_unreadable_and_truncated_images_and_reports_them(
    tmp_path, checkpoint_path, capsys
):
    source = tmp_path / "frames"
    source.mkdir()
    cv2.imwrite(str(source / "a_good.png"), scene(120, 160, seed=1))
    ok, jpeg = cv2.imencode(".jpg", scene(120, 160, seed=2))
    assert ok
    (source / "b_cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])  # camera dropped the end
    (source / "c_noise.png").write_bytes(b"not a png at all")
    # OpenCV raises on this one instead of returning None.
    (source / "d_huge.jpg").write_bytes(jpeg_claiming_size(60000, 60000))
    output = tmp_path / "out"
    common = ["--weights", str(checkpoint_path), "--input-size", "256", "--device", "cpu"]
    assert main(["predict", *common, "--source", str(source), "--output", str(output)]) == 0
    report = json.loads((output / "detections.json").read_text())
    assert [record["source"] for record in report["images"]] == ["a_good"]
    skipped = {Path(entry["source"]).name: entry["problem"] for entry in report["skipped"]}
    assert skipped == {
        "b_cut.jpg": "truncated JPEG (no end-of-image marker)",
        "c_noise.png": "not a decodable image (corrupt or another format)",
        "d_huge.jpg": "60000x60000 pixels, more than OpenCV decodes (2^30 unless the environment "
        "variable OPENCV_IO_MAX_IMAGE_PIXELS raises it); scale it down first",
    }
    assert "1 images, 3 unreadable skipped" in capsys.readouterr().out
    # Nothing readable at all, or a single unreadable file: an error naming it.
    (source / "a_good.png").unlink()
    fresh = tmp_path / "fresh"
    assert main(["predict", *common, "--source", str(source), "--output", str(fresh)]) == 2
    assert "none of the 3 images" in capsys.readouterr().err
    assert not fresh.exists()  # a refused run leaves no output folder behind
    lone = source / "b_cut.jpg"
    # Refused before the model loads: no "weights" line, no folder.
    for weights in (str(checkpoint_path), str(tmp_path / "no_such.pt")):
        run = ["predict", *common[2:], "--weights", weights, "--source", str(lone)]
        assert main([*run, "--output", str(fresh)]) == 2
        assert "b_cut.jpg: truncated JPEG" in capsys.readouterr().err
        assert not fresh.exists()
