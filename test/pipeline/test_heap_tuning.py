"""glibc heap tuning: freed frame-sized buffers are reused instead of faulted in again.

Each case runs in a fresh interpreter: the settings are process-wide and one-way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# Two 720p frames alive at once, then both freed: the pattern of a node taking camera images
# (a C message and its Python copy). Minor page faults per round show whether the memory was
# handed back to the kernel and mapped again.
FRAME_ROUNDS = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap

    applied = keep_frames_on_the_heap() if sys.argv[1] == "tuned" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def one_round():
        first = np.ones(720 * 1280 * 3, np.uint8)
        second = np.ones(720 * 1280 * 3, np.uint8)
        del first, second
    for _ in range(5):
        one_round()
    before = faults()
    for _ in range(50):
        one_round()
    print(json.dumps({"applied": applied, "faults_per_round": (faults() - before) / 50}))
    """
)


def run_rounds(mode: str, **environment: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", FRAME_ROUNDS, mode],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_tuned_process_reuses_freed_frames_instead_of_faulting_them_in():
    default = run_rounds("default")
    tuned = run_rounds("tuned")
    assert tuned["applied"] is True
    # Each 2.7 MB frame is ~660 pages; glibc's defaults map them afresh round after round.
    assert default["faults_per_round"] > 600
    assert tuned["faults_per_round"] < 20


def test_thresholds_set_in_the_environment_are_left_alone():
    result = run_rounds("tuned", MALLOC_TRIM_THRESHOLD_="131072")
    assert result["applied"] is False
    assert result["faults_per_round"] > 600  # the user's (small) trim threshold still rules
