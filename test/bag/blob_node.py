"""Stand-in `detector_node` command for replay tests: the real node with the blob detector.

Run as ``python blob_node.py [--delay-s S] [--die-after-batches N] [--wrap] --ros-args ...``.
``--delay-s`` makes every batch take at least S seconds (to force newest-frame-wins drops);
``--die-after-batches`` ends the process abruptly (exit 3, as a crash would) when batch N + 1
starts; ``--wrap`` runs the node as a child of this process, like ``ros2 run`` does, so resource
figures must follow children.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _blob_detector(delay_s: float, die_after: int | None = None):
    import os

    from blob_detector import BlobDetector

    batches = []

    class StandInDetector(BlobDetector):
        """BlobDetector with the rest of the Detector protocol the node uses."""

        supports_restoration = True
        runs_on_gpu = False

        def detect(self, images, restore: bool = False):
            if die_after is not None and len(batches) >= die_after:
                os._exit(3)  # no clean-up, no log line: as a segfault or an OOM kill
            batches.append(len(images))
            if delay_s > 0:
                time.sleep(delay_s)
            return super().detect(images, restore)

        def prepare_ahead(self, key, image) -> bool:
            return False

        def warm_up(self) -> float:
            return 0.0

    return StandInDetector()


def main(argv: list[str]) -> int:
    """Start the node (or a child running it with ``--wrap``)."""
    delay_s = 0.0
    if "--wrap" in argv:
        argv = [a for a in argv if a != "--wrap"]
        child = subprocess.Popen([sys.executable, __file__, *argv])
        # The replay signals this launcher only; pass Ctrl-C on like `ros2 run` does.
        signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGINT))
        return child.wait()
    die_after = None
    while argv[:1] in (["--delay-s"], ["--die-after-batches"]):
        if argv[0] == "--delay-s":
            delay_s = float(argv[1])
        else:
            die_after = int(argv[1])
        argv = argv[2:]
    from togethernet_ros.ros import detector_node

    detector_node.DetectorNode._create_detector = lambda self, settings: _blob_detector(
        delay_s, die_after
    )
    return detector_node.main([sys.argv[0], *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
