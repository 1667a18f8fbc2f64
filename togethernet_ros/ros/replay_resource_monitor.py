"""CPU / memory of a process (psutil) and GPU use (nvidia-smi, when present), sampled in a thread."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import psutil


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


def _gpu_sample(pid: int) -> dict:
    sample: dict = {}
    try:
        overall = _nvidia_smi_rows("--query-gpu=utilization.gpu,memory.used")
        if overall:
            utilization, memory = (float(v) for v in overall[0].split(",")[:2])
            sample["gpu_util_percent"] = utilization
            sample["gpu_memory_used_mb"] = memory
        for line in _nvidia_smi_rows("--query-compute-apps=pid,used_memory"):
            app_pid, used = (v.strip() for v in line.split(",")[:2])
            if app_pid.isdigit() and int(app_pid) == pid:
                sample["gpu_process_memory_mb"] = float(used)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return sample


class ResourceMonitor(threading.Thread):
    """Samples ``pid`` every ``period_s`` until :meth:`stop`; ``samples`` holds dicts."""

    def __init__(self, pid: int, period_s: float = 0.25, gpu: bool | None = None) -> None:
        super().__init__(name="replay-resource-monitor", daemon=True)
        self.pid = pid
        self.period_s = period_s
        self.gpu = shutil.which("nvidia-smi") is not None if gpu is None else gpu
        self.samples: list[dict] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Thread body: sample the process's CPU and memory until stopped."""
        try:
            process = psutil.Process(self.pid)
            process.cpu_percent(None)
        except psutil.Error:
            return
        last_gpu = 0.0
        while not self._stop_event.wait(self.period_s):
            try:
                with process.oneshot():
                    sample = {
                        "t": time.monotonic(),
                        "cpu_percent": process.cpu_percent(None),
                        "rss_mb": process.memory_info().rss / 2**20,
                        "threads": process.num_threads(),
                    }
            except psutil.Error:
                return
            if self.gpu and sample["t"] - last_gpu >= 1.0:
                sample.update(_gpu_sample(self.pid))
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
