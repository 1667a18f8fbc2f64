"""Held-out report of already-trained distilled weights (e.g. the shipped demo weights), on CPU.

`togethernet distill` trains and then reports; this script only reports, so weights trained
elsewhere (a GPU machine) get the same figures: per fog density β, TogetherNet's mAP@0.5
against the teacher's clear-frame boxes next to the teacher run directly on the foggy frames,
and the dehazing PSNR/SSIM. The dataset is the pseudo-labelled directory the weights were
trained from (its ``teacher.onnx`` gives the baseline); only its held-out frames are used.

Usage: .venv/bin/python benchmarks/bench_distill_weights.py WEIGHTS DATASET
       [--betas 0,0.05,0.1,0.15] [--input-size 384 | 384x512] [--max-frames 0] [--out DIR]
       [--onnx NAME.onnx]  (an exported file, e.g. an int8 copy, evaluated in ONNX Runtime)
Writes DIR/heldout_report.json (+ .png, + eval_seconds) and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from machine import cpu_model_name

from togethernet_ros.distill.coco_classes import map_coco_classes
from togethernet_ros.distill.heldout_report import evaluate_heldout, format_report, write_report
from togethernet_ros.distill.nanodet_teacher import NanoDetTeacher
from togethernet_ros.distill.pseudo_labels import load_pseudo_labels
from togethernet_ros.inference.cli_arguments import parse_input_size
from togethernet_ros.inference.export import (
    DEHAZED_OUTPUT_NAME,
    INPUT_NAME,
    MAP_OUTPUT_NAMES,
    read_onnx_info,
)
from togethernet_ros.model import load_checkpoint

# The baseline teacher keeps low-score boxes so its precision/recall curve is complete, as in
# `togethernet distill`'s own report.
BASELINE_CONF = 0.05


class OnnxModel:
    """The slice of the TogetherNet module interface that `evaluate_heldout` uses, over ORT."""

    strides = (8, 16, 32)

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        info = read_onnx_info(path)
        if not info.restore:
            raise SystemExit(f"{path}: the held-out report needs the with-restoration file")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def to(self, device: object) -> OnnxModel:
        return self

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, batch: torch.Tensor, restore: bool = True) -> SimpleNamespace:
        names = [*MAP_OUTPUT_NAMES, DEHAZED_OUTPUT_NAME]
        outputs = self.session.run(names, {INPUT_NAME: batch.cpu().numpy()})
        tensors = [torch.from_numpy(array) for array in outputs]
        return SimpleNamespace(maps=tensors[:3], dehazed=tensors[3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="our checkpoint file (.pt)")
    parser.add_argument("dataset", help="pseudo-labelled dataset directory (labels.json)")
    parser.add_argument("--betas", default="0,0.05,0.1,0.15", help="comma-separated fog β")
    parser.add_argument(
        "--input-size", type=parse_input_size, default=(384, 384), help="SIDE or HxW"
    )
    parser.add_argument("--max-frames", type=int, default=0, help="0 = all held-out frames")
    parser.add_argument("--out", default="benchmarks/results/distill_weights")
    parser.add_argument(
        "--onnx",
        help="evaluate this exported file (e.g. NAME.int8.onnx, with restoration) in ONNX Runtime "
        "instead of the checkpoint in PyTorch; the checkpoint still gives the class names",
    )
    args = parser.parse_args()

    label_set = load_pseudo_labels(args.dataset)
    teacher_path = Path(args.dataset) / "teacher.onnx"
    if not teacher_path.is_file():
        raise SystemExit(f"{args.dataset}: no teacher.onnx, so no teacher baseline to compare")
    loaded = load_checkpoint(args.weights)
    if tuple(loaded.class_names) != tuple(label_set.class_names):
        raise SystemExit(
            f"class names differ: weights {loaded.class_names}, dataset {label_set.class_names}"
        )
    class_mapping = label_set.info.get("teacher", {}).get("class_mapping", {})
    mapping = map_coco_classes(label_set.class_names, truck_as=class_mapping.get("truck"))
    teacher = NanoDetTeacher(teacher_path, conf_threshold=BASELINE_CONF)
    betas = [float(value) for value in args.betas.split(",") if value.strip()]

    model = OnnxModel(args.onnx) if args.onnx else loaded.model
    started = time.perf_counter()
    report = evaluate_heldout(
        model,
        label_set,
        betas,
        args.input_size,
        teacher,
        mapping,
        max_frames=args.max_frames or None,
    )
    seconds = time.perf_counter() - started
    report["eval_seconds"] = round(seconds, 1)
    report["machine"] = f"{cpu_model_name()}, {torch.get_num_threads()} torch threads"
    report["weights"] = Path(args.onnx or args.weights).name
    json_path, plot_path = write_report(report, args.out)
    print(format_report(report))
    for row in report["rows"]:
        student, teacher = row["student_at_score"], row["teacher_at_score"]
        print(
            f"β {row['beta']:.3f} at score ≥ {report['operating_score']}: TogetherNet "
            f"P {student['precision']} R {student['recall']}, teacher "
            f"P {teacher['precision']} R {teacher['recall']}"
        )
    print(
        f"{report['heldout_frames']} frames × {len(betas)} densities in {seconds:.0f} s "
        f"({seconds / (report['heldout_frames'] * len(betas)):.2f} s per frame and density)"
    )
    print(f"wrote {json_path}, {plot_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
