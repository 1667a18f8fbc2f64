"""CPU / memory of a process and its children (psutil) and GPU use (nvidia-smi, when present), sampled in a thread."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil

from togethernet_ros.pipeline.usable_cpus import usable_cpus


def _nvidia_smi_rows(query: str) -> list[str]:
    """CSV rows (no header, no units) that ``nvidia-smi <query>`` prints."""
    completed = subprocess.run(
        ["nvidia-smi", query, "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return completed.stdout.strip().splitlines()


def _gpu_sample(pids: set[int]) -> dict:
    sample: dict = {}
    try:
        overall = _nvidia_smi_rows("--query-gpu=utilization.gpu,memory.used")
        if overall:
            utilization, memory = (float(v) for v in overall[0].split(",")[:2])
            sample["gpu_util_percent"] = utilization
            sample["gpu_memory_used_mb"] = memory
        for line in _nvidia_smi_rows("--query-compute-apps=pid,used_memory"):
            app_pid, used = (v.strip() for v in line.split(",")[:2])
            if app_pid.isdigit() and int(app_pid) in pids:
                sample["gpu_process_memory_mb"] = sample.get("gpu_process_memory_mb", 0.0) + float(
                    used
                )
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return sample


def machine_description() -> dict:
    """What the figures were measured on: CPU, memory, GPUs, OS, Python and ROS."""
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            gpus = _nvidia_smi_rows("--query-gpu=name,memory.total")
    return {
        "cpu": cpu_model,
        "cpu_count": psutil.cpu_count(),
        # Affinity: a container or taskset may allow fewer cores than the machine has.
        "cpus_usable": usable_cpus() or psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus,
        "os": platform.platform(),
        "python": platform.python_version(),
        "ros_distro": os.environ.get("ROS_DISTRO"),
        "rmw_implementation": os.environ.get("RMW_IMPLEMENTATION"),
    }


class ResourceMonitor(threading.Thread):
    """Samples ``pid`` and its descendants (added up) every ``period_s`` until :meth:`stop`; ``samples`` holds dicts."""

    def __init__(self, pid: int, period_s: float = 0.25, gpu: bool | None = None) -> None:
        super().__init__(name="replay-resource-monitor", daemon=True)
        self.pid = pid
        self.period_s = period_s
        self.gpu = shutil.which("nvidia-smi") is not None if gpu is None else gpu
        self.samples: list[dict] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Thread body: sample the process tree's CPU and memory until stopped.

        The tree, because the command started may be a launcher (``ros2 run``, a shell script)
        whose child is the node: the launcher alone read 12 MiB and 0 % CPU.
        """
        try:
            root = psutil.Process(self.pid)
            root.cpu_percent(None)
        except psutil.Error:
            return
        tree = {self.pid: root}
        last_gpu = 0.0
        while not self._stop_event.wait(self.period_s):
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                return
            for child in children:
                if child.pid not in tree:
                    tree[child.pid] = child
                    # Starts cpu_percent's interval: a first call always reads 0.
                    with contextlib.suppress(psutil.Error):
                        child.cpu_percent(None)
            sample = {"t": time.monotonic(), "cpu_percent": 0.0, "rss_mb": 0.0, "threads": 0}
            alive = 0
            for pid, process in list(tree.items()):
                try:
                    with process.oneshot():
                        sample["cpu_percent"] += process.cpu_percent(None)
                        sample["rss_mb"] += process.memory_info().rss / 2**20
                        sample["threads"] += process.num_threads()
                    alive += 1
                except psutil.Error:
                    del tree[pid]  # an exited child; the root's exit ends the loop below
            if self.pid not in tree:
                return
            sample["processes"] = alive
            if self.gpu and sample["t"] - last_gpu >= 1.0:
                sample.update(_gpu_sample(set(tree)))
                last_gpu = sample["t"]
            self.samples.append(sample)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=10)

    def summary(self, since: float | None = None) -> dict:
        """Mean/max of every sampled quantity (optionally only samples after ``since``)."""
        samples = [s for s in self.samples if since is None or s["t"] >= since]
        keys = sorted({k for s in samples for k in s} - {"t"})
        result: dict = {"samples": len(samples), "cpu_count": psutil.cpu_count()}
        for key in keys:
            values = [s[key] for s in samples if key in s]
            if values:
                result[f"{key}_mean"] = round(sum(values) / len(values), 2)
                result[f"{key}_max"] = round(max(values), 2)
        return result
