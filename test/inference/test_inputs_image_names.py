"""`togethernet predict` on folders as users have them: names differing only in case, spaces
and non-ASCII names, odd pixel formats and images smaller than the network's stride."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from togethernet_ros.cli import main
from togethernet_ros.inference.media import output_names

from .conftest import scene


def test_names_differing_only_in_case_get_outputs_a_case_insensitive_disk_keeps_apart():
    names = output_names([Path("Cam.png"), Path("cam.jpg"), Path("other.png")])
    assert len({name.casefold() for name in names}) == 3
    assert names == ["Cam.png", "cam.jpg", "other"]


def test_a_mixed_folder_predicts_every_image_under_its_own_name(tmp_path, checkpoint_path):
    source = tmp_path / "frames"
    source.mkdir()
    rgb = scene(96, 128, seed=1)[..., ::-1]
    Image.fromarray(rgb).save(source / "Cam.png")
    Image.fromarray(rgb).save(source / "cam.jpg")
    Image.fromarray(rgb).convert("P").save(source / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(source / "cmyk.jpg")
    Image.fromarray(np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])).save(source / "alpha.png")
    cv2.imwrite(str(source / "deep 16 bit.png"), scene(96, 128, seed=2).astype(np.uint16) * 257)
    cv2.imencode(".jpg", scene(96, 128, seed=3))[1].tofile(str(source / "straße 東京.jpg"))
    cv2.imwrite(str(source / "dot.png"), scene(3, 5, seed=4))  # smaller than one stride
    (source / "notes.txt").write_text("not an image")
    output = tmp_path / "out"
    common = ["--weights", str(checkpoint_path), "--input-size", "128", "--device", "cpu"]
    assert main(["predict", *common, "--source", str(source), "--output", str(output)]) == 0
    report = json.loads((output / "detections.json").read_text())
    sizes = {record["source"]: (record["width"], record["height"]) for record in report["images"]}
    assert sizes == {
        "Cam.png": (128, 96),
        "alpha": (128, 96),
        "cam.jpg": (128, 96),
        "cmyk": (128, 96),
        "deep 16 bit": (128, 96),
        "dot": (5, 3),
        "palette": (128, 96),
        "straße 東京": (128, 96),
    }
    assert report["skipped"] == []
    for name, (width, height) in sizes.items():
        for folder, suffix in (("annotated", ".jpg"), ("dehazed", ".png")):
            written = cv2.imdecode(np.fromfile(output / folder / f"{name}{suffix}", np.uint8), 1)
            assert written.shape == (height, width, 3)
