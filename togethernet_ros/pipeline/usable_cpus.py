"""How many CPUs this process may run on: its affinity, and its container's CPU quota."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> int | None:
    """CPUs this process may use: a taskset or a container may allow fewer than the host has.

    The affinity mask (taskset, cpuset), further capped by a CPU quota (``docker --cpus 2``,
    a Kubernetes CPU limit: cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), rounded up. A
    quota leaves every core visible, so threads sized by the core count alone would queue for
    the quota's share. None where the platform cannot tell.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    if quota is None:
        return cpus
    limit = max(1, math.ceil(quota))
    return limit if cpus is None else min(cpus, limit)


def cgroup_cpu_quota(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """This process's cgroup CPU quota in CPUs (1.5 for 150 ms per 100 ms); None if unlimited.

    Any file that is missing or unreadable counts as no quota: the limit only ever lowers the
    thread counts derived from it.
    """
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.count(":") < 2:
            continue
        _hierarchy, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2: one unified hierarchy
            quota = _read_fraction(cgroup_root / relative / "cpu.max", separator=" ")
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own mount
            mount = cgroup_root / controllers
            quota = _read_fraction(
                mount / relative / "cpu.cfs_quota_us", period=mount / relative / "cpu.cfs_period_us"
            )
        else:
            continue
        if quota is not None:
            return quota
    return None


def _read_fraction(
    quota_file: Path, separator: str | None = None, period: Path | None = None
) -> float | None:
    """A quota over its period: "150000 100000" in one file (v2) or two files (v1)."""
    try:
        fields = quota_file.read_text().split(separator)
        if period is not None:
            fields.append(period.read_text())
        quota, period_us = fields[0].strip(), fields[1].strip()
        if quota in ("max", "-1"):
            return None
        value = int(quota) / int(period_us)
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None
    return value if value > 0 else None
