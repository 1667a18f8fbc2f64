"""glibc heap settings for processes that allocate and free frame-sized buffers many times a second.

glibc gives an allocation above its mmap threshold fresh pages from the kernel and returns them
on free; it also hands the top of the heap back once more than the trim threshold is free there.
Both thresholds adapt to what the process has freed so far, so whether a 720p frame (2.7 MB,
allocated twice when rclpy takes it: as a C message and as the Python one), a 1080p frame or a
large CPU activation is reused or mapped and zeroed afresh depends on the allocation history.
Pinning them removes that lottery. Measured on the 2-core CPU (docs/benchmarks.md): an rclpy
subscriber without torch took a 720p Image in 4.0 ms instead of 0.6 ms, with the GIL held, under
the defaults; torch CPU `detect()` of 4 x 720p at 384x640 ran 5-8 % faster with no page faults
left (17,000-19,000 per call before); the node at 4 x 30 Hz used ~75 MiB more memory.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

LOGGER = logging.getLogger("togethernet_ros")

# mallopt() parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The environment variables with which glibc users set these by hand; theirs wins.
OVERRIDE_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_frames_on_the_heap(
    mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20
) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if they were set.

    Does nothing (False) outside glibc (macOS, musl), or when the environment already sets
    either threshold. Call it early, before the frame buffers are allocated.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in OVERRIDE_VARIABLES):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it, musl has mallopt too
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # 32 MiB is the largest mmap threshold every 64-bit glibc accepts.
    applied = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    applied = mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1 and applied
    if not applied:
        LOGGER.debug("glibc refused the heap thresholds; keeping its defaults")
    return applied
