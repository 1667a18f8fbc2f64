"""`togethernet demo-data`: a foggy two-camera sample bag from a real video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_writer import check_output_apart_from_input
from togethernet_ros.bag.demo_data import FRONT_TOPIC, SIDE_TOPIC, build_demo_bag
from togethernet_ros.bag.sample_video import SampleVideoError, fetch_sample_video
from togethernet_ros.inference.cli_arguments import (
    parse_non_negative_number,
    parse_positive_int,
    parse_positive_number,
)

HELP = "Build a foggy two-camera sample rosbag2 from a real video (default: OpenCV's vtest.avi)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo-data options."""
    parser.add_argument(
        "--video",
        type=Path,
        default=None,
        help="video to use (default: vtest.avi from Debian's opencv-doc, fetched with apt-get)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("foggy_sample_bag"),
        help="bag to write (default foggy_sample_bag)",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--max-frames", type=parse_positive_int, default=120, help="frames per camera (default 120)"
    )
    parser.add_argument(
        "--fps", type=parse_positive_number, default=None, help="stamp rate (default: the video's)"
    )
    parser.add_argument(
        "--max-beta",
        type=parse_non_negative_number,
        default=0.15,
        help="fog density β at the last frame (first: 0; default 0.15)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the video is cached")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output bag")


def run(args: argparse.Namespace) -> int:
    """Fetch the video if needed and write the bag."""
    try:
        video = args.video or fetch_sample_video(args.cache_dir)
        # --overwrite would delete the video (or a folder holding it) before it is read.
        check_output_apart_from_input(video, args.output, what="video")
        with tqdm(total=args.max_frames, unit="frame", desc="demo-data", leave=False) as bar:
            result = build_demo_bag(
                video,
                args.output,
                storage=args.storage,
                max_frames=args.max_frames,
                fps=args.fps,
                max_beta=args.max_beta,
                overwrite=args.overwrite,
                progress=lambda done, total: bar.update(done - bar.n),
            )
    except SampleVideoError as error:  # the machine could not fetch it: not a usage error
        print(f"demo-data: {error}", file=sys.stderr)
        return 1
    except (BagError, ValueError, FileNotFoundError) as error:
        print(f"demo-data: {error}", file=sys.stderr)
        return 2
    height, width = result.size
    print(
        f"wrote {result.path} ({args.storage}): {result.frames} frames per camera at "
        f"{result.fps:g} fps from {video}\n"
        f"  {FRONT_TOPIC} (sensor_msgs/Image bgr8, {width}x{height})\n"
        f"  {SIDE_TOPIC} (sensor_msgs/CompressedImage jpeg, mirrored crop)\n"
        f"  fog β from {result.betas[0]:g} (clear) to {result.betas[-1]:g} (dense)"
    )
    return 0
