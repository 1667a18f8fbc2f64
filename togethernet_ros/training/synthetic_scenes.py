"""Synthetic foggy detection scenes for smoke tests and benchmarks (no dataset download).

Textured backgrounds with simple coloured shapes, one shape and colour per class, fogged with
the atmospheric scattering model. Small enough to learn in minutes on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from togethernet_ros.training.paired_dataset import PairedSample
from togethernet_ros.training.voc_xml import write_voc_xml
from togethernet_ros.vision.fog import add_fog

CLASS_COLOURS = ((230, 40, 40), (40, 200, 60), (50, 80, 240), (240, 220, 40), (220, 60, 220))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    coarse = rng.integers(40, 200, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    stripes = (np.sin(np.arange(width) / rng.uniform(3, 9)) * 12).astype(np.int16)
    noise = rng.integers(-10, 11, (height, width, 3), dtype=np.int16)
    return np.clip(image.astype(np.int16) + stripes[None, :, None] + noise, 0, 255).astype(np.uint8)


def _draw(image: np.ndarray, class_id: int, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    colour = CLASS_COLOURS[class_id % len(CLASS_COLOURS)]
    cx, cy, rx, ry = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 2, (y2 - y1) // 2
    kind = class_id % 5
    if kind == 0:
        cv2.ellipse(image, (cx, cy), (rx, ry), 0, 0, 360, colour, -1)
    elif kind == 1:
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, -1)
    elif kind == 2:
        points = np.array([[cx, y1], [x2, y2], [x1, y2]], np.int32)
        cv2.fillPoly(image, [points], colour)
    elif kind == 3:
        thickness = max((x2 - x1) // 4, 2)
        cv2.rectangle(image, (cx - thickness // 2, y1), (cx + thickness // 2, y2), colour, -1)
        cv2.rectangle(image, (x1, cy - thickness // 2), (x2, cy + thickness // 2), colour, -1)
    else:
        cv2.ellipse(image, (cx, cy), (rx, ry), 0, 0, 360, colour, max(rx // 3, 2))


def make_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_classes: int,
    max_objects: int = 3,
    min_size: int = 24,
    max_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clean RGB scene with 1..max_objects non-overlapping shapes: (image, boxes, labels)."""
    image = _background(rng, height, width)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
            x1 = int(rng.integers(0, width - w))
            y1 = int(rng.integers(0, height - h))
            box = (x1, y1, x1 + w, y1 + h)
            if all(
                box[2] < other[0] or other[2] < box[0] or box[3] < other[1] or other[3] < box[1]
                for other in boxes
            ):
                class_id = int(rng.integers(0, num_classes))
                _draw(image, class_id, box)
                boxes.append(box)
                labels.append(class_id)
                break
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


class SyntheticFogDataset(Dataset):
    """``count`` fixed scenes (seeded), each fogged with β drawn from ``beta_range``."""

    def __init__(
        self,
        count: int,
        height: int = 128,
        width: int = 128,
        num_classes: int = 3,
        seed: int = 0,
        beta_range: tuple[float, float] = (0.05, 0.12),
        max_objects: int = 3,
        min_size: int = 24,
        max_size: int = 64,
    ):
        rng = np.random.default_rng(seed)
        self.samples = []
        for index in range(count):
            clean, boxes, labels = make_scene(
                rng, height, width, num_classes, max_objects, min_size, max_size
            )
            hazy = add_fog(clean, float(rng.uniform(*beta_range)))
            difficult = np.zeros(len(labels), bool)
            self.samples.append(PairedSample(hazy, clean, boxes, labels, difficult, f"{index:05d}"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> PairedSample:
        return self.samples[index]


def write_voc_fog_dataset(
    root: str | Path,
    dataset: SyntheticFogDataset,
    class_names: Sequence[str],
    image_set: str = "train",
) -> Path:
    """Write scenes in the VOC-FOG layout: JPEGImages (clean), FOG (hazy), Annotations, ImageSets."""
    root = Path(root)
    for folder in ("JPEGImages", "FOG", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    for sample in dataset.samples:
        height, width = sample.clean.shape[:2]
        # PNG keeps pixels exact, so tests can compare against the in-memory scenes.
        cv2.imwrite(str(root / "JPEGImages" / f"{sample.image_id}.png"), sample.clean[:, :, ::-1])
        cv2.imwrite(str(root / "FOG" / f"{sample.image_id}.png"), sample.hazy[:, :, ::-1])
        write_voc_xml(
            root / "Annotations" / f"{sample.image_id}.xml",
            f"{sample.image_id}.png",
            width,
            height,
            sample.boxes,
            sample.labels,
            class_names,
        )
        ids.append(sample.image_id)
    (root / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(ids) + "\n")
    return root
