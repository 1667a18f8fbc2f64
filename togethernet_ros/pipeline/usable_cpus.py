"""How many CPUs this process may run on."""

from __future__ import annotations

import os


def usable_cpus() -> int | None:
    """CPUs this process may use: a container or taskset may allow fewer than the host has.

    None where the platform cannot tell (``os.cpu_count()`` unknown, no affinity call).
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()
