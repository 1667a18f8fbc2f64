"""A container's CPU quota caps the CPUs thread counts are sized by (cgroup v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from togethernet_ros.pipeline.usable_cpus import cgroup_cpu_quota, usable_cpus


def _cgroup_v2(tmp_path: Path, cpu_max: str | None, path: str = "/docker/abc") -> tuple:
    root, proc = tmp_path / "cgroup", tmp_path / "proc_self_cgroup"
    folder = root / path.lstrip("/")
    folder.mkdir(parents=True)
    if cpu_max is not None:
        (folder / "cpu.max").write_text(cpu_max + "\n")
    proc.write_text(f"0::{path}\n")
    return root, proc


def _cgroup_v1(tmp_path: Path, quota_us: int, period_us: int = 100_000) -> tuple:
    root, proc = tmp_path / "cgroup", tmp_path / "proc_self_cgroup"
    folder = root / "cpu,cpuacct" / "kubepods" / "pod1"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    proc.write_text("12:memory:/kubepods/pod1\n4:cpu,cpuacct:/kubepods/pod1\n1:name=systemd:/\n")
    return root, proc


def _affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("150000 100000", 1.5), ("200000 100000", 2.0), ("max 100000", None), ("garbage", None)],
)
def test_a_cgroup_v2_quota_is_read_in_cpus(tmp_path, cpu_max, quota):
    assert cgroup_cpu_quota(*_cgroup_v2(tmp_path, cpu_max)) == quota


def test_a_cgroup_v1_quota_is_read_from_the_cpu_controller(tmp_path):
    assert cgroup_cpu_quota(*_cgroup_v1(tmp_path, 50_000)) == 0.5
    unlimited = tmp_path / "unlimited"
    unlimited.mkdir()
    assert cgroup_cpu_quota(*_cgroup_v1(unlimited, -1)) is None


def test_a_quota_caps_the_cpus_rounded_up_and_never_raises_them(tmp_path):
    # 0.5 CPU still gets one; 1.5 gets two (where the affinity has two or more).
    assert usable_cpus(*_cgroup_v1(tmp_path, 50_000)) == 1
    half = tmp_path / "one_and_a_half"
    half.mkdir()
    assert usable_cpus(*_cgroup_v2(half, "150000 100000")) == min(2, _affinity())
    many = tmp_path / "many"
    many.mkdir()
    assert usable_cpus(*_cgroup_v2(many, "6400000 100000")) == _affinity()


def test_no_cgroup_files_mean_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path / "none", tmp_path / "no_proc_file") is None
    assert usable_cpus(*_cgroup_v2(tmp_path, None)) == _affinity()
