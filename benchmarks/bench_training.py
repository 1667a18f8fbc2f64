"""Training throughput on this machine: model images/s vs data-loader images/s.

Model: TogetherNet-s (default config), full training step (forward on hazy, published loss,
backward, SGD step, EMA update) at each input size. Loader: the real VOC-FOG reader + paired
augmentation over JPEG files (640×480) written to a temp dir, through a DataLoader with workers.

    .venv/bin/python benchmarks/bench_training.py --sizes 256 640 --out bench_training.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

from togethernet_ros.model import build_model
from togethernet_ros.training.detection_loss import together_loss
from togethernet_ros.training.model_ema import ModelEMA
from togethernet_ros.training.optimizer_groups import build_sgd
from togethernet_ros.training.paired_dataset import VocFogDataset
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
from togethernet_ros.training.trainer import ImageNormaliser
from togethernet_ros.training.training_batches import AugmentedPairs, collate_pairs

CLASSES = ("person", "bicycle", "car", "motorbike", "bus")


def model_images_per_s(size: int, batch: int, steps: int, repeats: int) -> list[float]:
    """Median-friendly list of images/s over ``repeats`` timed blocks of ``steps`` steps."""
    torch.manual_seed(0)
    model = build_model(num_classes=5).train()
    optimizer = build_sgd(model, 0.01, 0.937, 5e-4)
    ema = ModelEMA(model)
    normalise = ImageNormaliser()
    scenes = SyntheticFogDataset(
        batch, size, size, num_classes=5, min_size=size // 8, max_size=size // 3
    )
    pairs = AugmentedPairs(scenes, (size, size), seed=0, augment=False)
    hazy, clean, targets = collate_pairs([pairs[i] for i in range(batch)])

    def step() -> None:
        output = model(normalise(hazy))
        terms = together_loss(
            output.maps, output.dehazed, normalise(clean), targets, model.strides, 5
        )
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        ema.update(model)

    step()  # warm-up (allocations, kernel selection)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - started))
    return rates


def loader_images_per_s(
    size: int, batch: int, workers: int, count: int, repeats: int
) -> list[float]:
    """Images/s of the real reader + paired augmentation + collate, over JPEG files."""
    from togethernet_ros.training.synthetic_scenes import write_voc_fog_dataset

    with tempfile.TemporaryDirectory() as tmp:
        scenes = SyntheticFogDataset(count, 480, 640, num_classes=5, min_size=40, max_size=200)
        root = write_voc_fog_dataset(Path(tmp), scenes, CLASSES)
        for folder in ("JPEGImages", "FOG"):  # JPEG decode cost, as in VOC-FOG
            for png in (root / folder).glob("*.png"):
                cv2.imwrite(str(png.with_suffix(".jpg")), cv2.imread(str(png)))
                png.unlink()
        dataset = VocFogDataset(root, "train", CLASSES)
        pairs = AugmentedPairs(dataset, (size, size), seed=0, augment=True)
        loader = DataLoader(
            pairs,
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            collate_fn=collate_pairs,
            persistent_workers=workers > 0,
        )
        rates = []
        for repeat in range(repeats + 1):
            started = time.perf_counter()
            images = sum(len(hazy) for hazy, _, _ in loader)
            if repeat > 0:  # first pass starts the workers
                rates.append(images / (time.perf_counter() - started))
        return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 640])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loader-images", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("bench_training.json"))
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        model_rates = model_images_per_s(size, args.batch, args.steps, args.repeats)
        loader_rates = loader_images_per_s(
            size, args.batch, args.workers, args.loader_images, args.repeats
        )
        results.append(
            {
                "input": size,
                "batch": args.batch,
                "train_images_per_s": statistics.median(model_rates),
                "train_runs": model_rates,
                "loader_images_per_s": statistics.median(loader_rates),
                "loader_runs": loader_rates,
                "loader_workers": args.workers,
            }
        )
    print(
        f"{'input':>6} {'batch':>6} {'train img/s':>12} {'loader img/s':>13} {'loader/train':>13}"
    )
    for row in results:
        ratio = row["loader_images_per_s"] / row["train_images_per_s"]
        print(
            f"{row['input']:>6} {row['batch']:>6} {row['train_images_per_s']:>12.2f} "
            f"{row['loader_images_per_s']:>13.1f} {ratio:>13.1f}"
        )
    payload = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
