"""Short real TogetherNet-s training run on CUDA with AMP: images/s and the loss curve.

Standalone (needs only torch, numpy, OpenCV and this repository): synthetic foggy scenes,
paired augmentation in DataLoader workers, the published loss, SGD + EMA, batch 16, 640 input,
bf16 autocast by default. Finishes in well under 3 minutes on an H100-class GPU.

    python benchmarks/gpu_train_check.py --out gpu_train.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from togethernet_ros.model import build_model
from togethernet_ros.training.detection_loss import together_loss
from togethernet_ros.training.lr_schedule import published_schedule
from togethernet_ros.training.model_ema import ModelEMA
from togethernet_ros.training.optimizer_groups import build_sgd
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset
from togethernet_ros.training.training_batches import AugmentedPairs, collate_pairs

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--steps", type=int, default=60, help="timed steps (after warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16")
    parser.add_argument("--images", type=int, default=96, help="synthetic scenes")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    scenes = SyntheticFogDataset(
        args.images, 480, 640, num_classes=5, seed=0, max_objects=6, min_size=32, max_size=220
    )
    pairs = AugmentedPairs(scenes, (args.size, args.size), seed=0, augment=True)
    loader = DataLoader(
        pairs,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        collate_fn=collate_pairs,
        pin_memory=True,
        persistent_workers=True,
    )
    model = build_model(num_classes=5).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    total_steps = args.steps + args.warmup_steps
    lr = 0.01 * args.batch / 64
    schedule = published_schedule(lr, total_steps, 1, warmup_epochs=3, flat_epochs=0)
    optimizer = build_sgd(model, lr, 0.937, 5e-4)
    ema = ModelEMA(model)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[args.amp]
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp == "fp16")
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    inv_std = 1 / (torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)
    losses, step_times = [], []
    step = 0
    started = None
    while step < total_steps:
        for hazy, clean, targets in loader:
            if step == args.warmup_steps:
                torch.cuda.synchronize()
                started = time.perf_counter()
            tick = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            hazy = (hazy.to(device, non_blocking=True).float() - mean) * inv_std
            clean = (clean.to(device, non_blocking=True).float() - mean) * inv_std
            if args.channels_last:
                hazy = hazy.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                output = model(hazy)
            terms = together_loss(output.maps, output.dehazed, clean, targets, model.strides, 5)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            ema.update(model)
            losses.append(float(terms.total.detach()))
            step_times.append(time.perf_counter() - tick)
            step += 1
            if step % 10 == 0:
                print(
                    f"step {step:4d} loss {losses[-1]:.4f} det {float(terms.detection):.3f} "
                    f"rest {float(terms.restoration):.4f}",
                    flush=True,
                )
            if step >= total_steps:
                break
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    images_per_s = args.steps * args.batch / elapsed
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "amp": args.amp,
        "batch": args.batch,
        "input": args.size,
        "timed_steps": args.steps,
        "images_per_s": images_per_s,
        "median_step_s": statistics.median(step_times[args.warmup_steps :]),
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "loss_curve": losses,
        "loss_first10_mean": statistics.mean(losses[:10]),
        "loss_last10_mean": statistics.mean(losses[-10:]),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "loss_curve"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
