"""Write real frames for the GPU session as JPEGs (small enough to travel beside a wheel piece).

    .venv/bin/python benchmarks/gpu_frames.py ~/.cache/togethernet_ros/vtest.avi .dev_ros/frames

Every `--every`-th frame of a video (vtest.avi: frames 0, 50, ..., 750, 16 JPEGs, about 2 MB)
is saved as `<stem>_<index>.jpg`; `gpu_session.sh` reads the folder as FRAMES and sends
`vtest_0400.jpg` from the camera processes of its ros stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference.media import MediaSource


def write_frames(video: Path, output: Path, every: int, quality: int) -> list[Path]:
    """Save every `every`-th frame of `video` into `output`; returns the files written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in MediaSource(video):
        if frame.index % every == 0:
            path = output / f"{video.stem}_{frame.index:04d}.jpg"
            cv2.imwrite(str(path), frame.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            written.append(path)
    if not written:
        raise SystemExit(f"{video}: no frames could be read")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--quality", type=int, default=92, help="JPEG quality")
    args = parser.parse_args()
    written = write_frames(args.video, args.output, args.every, args.quality)
    size = sum(path.stat().st_size for path in written)
    print(f"{len(written)} frames, {size / 1e6:.1f} MB -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
