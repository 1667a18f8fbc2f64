"""`bag run` overhead: bag I/O + pipeline time versus pure model inference on the same frames.

Builds the foggy two-camera sample bag from vtest.avi (or --video), then, alternating, ``--repeats``
times:

* ``inference_only``: the same frames, decoded into memory beforehand, through
  ``detector.detect(batch, restore=True)`` in exactly the batches `bag run` forms;
* ``bag_run``: `run_bag` end to end (read + decode + batch + detect + track + serialize + write
  the output bag with inputs, smoothed/raw Detection2DArray and dehazed images).

overhead = (bag_run − inference_only) / bag_run, from the medians. Writes JSON to --out
(default benchmarks/results/bag.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from machine import cpu_model_name

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.demo_data import build_demo_bag
from togethernet_ros.bag.offline_pipeline import OfflinePipeline
from togethernet_ros.bag.sample_video import fetch_sample_video
from togethernet_ros.inference import create_detector


def _batches(bag: Path, detector, options: BagRunOptions) -> list[list]:
    """The batches `bag run` forms, with their decoded images, by a dry pipeline run."""
    batches: list[list] = []

    def record(images):
        batches.append(list(images))
        return [_Empty() for _ in images]

    pipeline = OfflinePipeline(
        detector, options.max_batch_size, options.max_batch_wait_ms, detect_fn=record
    )
    with BagReader(bag) as reader:
        for frame in reader.frames(detector.color_order):
            list(pipeline.push(frame))
    list(pipeline.finish())
    return batches


class _Empty:
    """Stand-in result for the dry run (no detections, no dehazed image)."""

    def __init__(self) -> None:
        from togethernet_ros.vision.detections import Detections

        self.detections = Detections.empty()
        self.dehazed = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=16, help="frames per camera")
    parser.add_argument("--input-size", type=int, nargs=2, default=[384, 640])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bag.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_bag_"))
    video = args.video or fetch_sample_video()
    bag = build_demo_bag(video, work / "sample", max_frames=args.frames).path
    detector = create_detector(
        None, allow_untrained=True, input_size=tuple(args.input_size), conf_threshold=0.3
    )
    options = BagRunOptions(overwrite=True)
    batches = _batches(bag, detector, options)
    frames = sum(len(b) for b in batches)
    detector.detect(batches[0], restore=True)  # warm-up (allocator, thread pool)

    inference_s, bag_run_s, in_run_inference_s = [], [], []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        for batch in batches:
            detector.detect(batch, restore=True)
        inference_s.append(time.perf_counter() - started)
        report = run_bag(bag, work / f"out{repeat}", detector, options)
        assert report.frames_processed == frames, report.frames_processed
        bag_run_s.append(report.wall_s)
        in_run_inference_s.append(report.inference_s)
        print(
            f"repeat {repeat}: inference only {inference_s[-1]:.2f} s, bag run {bag_run_s[-1]:.2f} s"
        )
    inference = statistics.median(inference_s)
    total = statistics.median(bag_run_s)
    result = {
        "machine": f"{__import__('os').cpu_count()}-core CPU, {cpu_model_name()}",
        "frames": frames,
        "batches": [len(b) for b in batches],
        "input_size": args.input_size,
        "backend": detector.backend,
        "restore": True,
        "inference_only_s": [round(v, 3) for v in inference_s],
        "bag_run_s": [round(v, 3) for v in bag_run_s],
        "bag_run_inference_s": [round(v, 3) for v in in_run_inference_s],
        "median_inference_only_s": round(inference, 3),
        "median_bag_run_s": round(total, 3),
        "overhead_fraction": round((total - inference) / total, 4),
        # Other jobs share the machine: the fastest repeat of each is the least disturbed.
        "min_inference_only_s": round(min(inference_s), 3),
        "min_bag_run_s": round(min(bag_run_s), 3),
        "overhead_fraction_of_minima": round(1 - min(inference_s) / min(bag_run_s), 4),
        "bag_run_internal_overhead_fraction": round(
            statistics.median(
                1 - i / w for i, w in zip(in_run_inference_s, bag_run_s, strict=True)
            ),
            4,
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'frames (2 cameras)':<44}{frames:>12}")
    print(f"{'inference only, median (s)':<44}{inference:>12.2f}")
    print(f"{'bag run end to end, median (s)':<44}{total:>12.2f}")
    print(
        f"{'overhead vs inference only (medians)':<44}{100 * result['overhead_fraction']:>11.1f}%"
    )
    print(
        f"{'overhead vs inference only (fastest runs)':<44}"
        f"{100 * result['overhead_fraction_of_minima']:>11.1f}%"
    )
    print(
        f"{'overhead inside bag run (1 - detect/wall)':<44}"
        f"{100 * result['bag_run_internal_overhead_fraction']:>11.1f}%"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
