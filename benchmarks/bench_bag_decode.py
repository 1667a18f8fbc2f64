"""`bag run` with JPEG cameras and a GPU-fast model: frames/s by `--decode-threads`.

Writes a bag of ``--cameras`` JPEG cameras (1280×720 frames of vtest.avi, or --video, at
quality 90, as a camera driver's image_transport publishes them), then runs `run_bag` on it
with a stand-in detector that takes a GPU's time (benchmarks/emulated_gpu_node.py: a sleep of
``base + per_frame × batch`` ms, the GIL released), once per ``--threads`` value, alternating,
``--repeats`` times. Also times decoding every frame on one thread, the floor one reader
thread sets. Writes JSON to --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
from emulated_gpu_node import EmulatedGpuDetector
from machine import cpu_model_name

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    encode_compressed_message,
    make_header,
)
from togethernet_ros.bag.sample_video import fetch_sample_video
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.pipeline.usable_cpus import usable_cpus

PERIOD_NS = 33_333_333  # 30 Hz


def write_jpeg_bag(video: Path, path: Path, cameras: int, frames: int) -> Path:
    """``cameras`` JPEG topics of ``frames`` 1280×720 video frames each, the cameras in step."""
    typestore = create_typestore()
    capture = cv2.VideoCapture(str(video))
    with BagWriter(path, storage="mcap", typestore=typestore) as writer:
        for index in range(frames):
            ok, frame = capture.read()
            if not ok:
                raise ValueError(f"{video} has fewer than {frames} frames")
            frame = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR)
            stamp = 1_700_000_000_000_000_000 + index * PERIOD_NS
            for camera in range(cameras):
                topic = f"/cam_{camera}/image_raw/compressed"
                header = make_header(typestore, stamp, f"cam_{camera}_optical")
                message = encode_compressed_message(typestore, frame, header, "jpeg", quality=90)
                writer.write(topic, COMPRESSED_IMAGE_TYPE, stamp, message)
    capture.release()
    return path


def serial_decode_s(bag: Path) -> tuple[float, int]:
    """Seconds to decode every frame of ``bag`` on this thread, and how many there were."""
    with BagReader(bag) as reader:
        started = time.perf_counter()
        count = sum(1 for _ in reader.frames())
        return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=60, help="frames per camera")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--emulate-gpu", default="2.2:0.8", metavar="BASE:PER_FRAME", help="model ms per batch"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bag_decode.json"))
    args = parser.parse_args()
    base_ms, _, per_frame_ms = args.emulate_gpu.partition(":")

    work = Path(tempfile.mkdtemp(prefix="bench_bag_decode_"))
    bag = write_jpeg_bag(
        args.video or fetch_sample_video(), work / "jpeg", args.cameras, args.frames
    )
    decode_s, frames = serial_decode_s(bag)
    wall: dict[int, list[float]] = {threads: [] for threads in args.threads}
    in_model: dict[int, list[float]] = {threads: [] for threads in args.threads}
    for repeat in range(args.repeats):
        for threads in args.threads:
            detector = EmulatedGpuDetector(
                float(base_ms), float(per_frame_ms), DEFAULT_CLASS_NAMES, 0.3, 0.45
            )
            options = BagRunOptions(dehazed=False, overwrite=True, decode_threads=threads)
            report = run_bag(bag, work / "out", detector, options)
            assert report.frames_processed == frames, report.frames_processed
            wall[threads].append(report.wall_s)
            in_model[threads].append(report.inference_s)
            print(
                f"repeat {repeat}, {threads} decode thread(s): {report.wall_s:.2f} s, "
                f"{frames / report.wall_s:.1f} frames/s"
            )
    result = {
        "machine": f"{usable_cpus() or os.cpu_count()}-core CPU, {cpu_model_name()}",
        "cameras": args.cameras,
        "frames": frames,
        "frame_size": [720, 1280],
        "jpeg_quality": 90,
        "emulated_gpu_ms": args.emulate_gpu,
        "serial_decode_ms_per_frame": round(1e3 * decode_s / frames, 3),
        "runs": {
            str(threads): {
                "wall_s": [round(v, 3) for v in wall[threads]],
                "median_frames_per_s": round(frames / statistics.median(wall[threads]), 1),
                "median_model_s": round(statistics.median(in_model[threads]), 3),
            }
            for threads in args.threads
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(f"decoding alone, one thread: {result['serial_decode_ms_per_frame']} ms per frame")
    print(f"{'decode threads':<16}{'frames/s':>10}{'model s':>10}")
    for threads in args.threads:
        run = result["runs"][str(threads)]
        print(f"{threads:<16}{run['median_frames_per_s']:>10}{run['median_model_s']:>10}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
