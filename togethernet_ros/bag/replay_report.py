"""Replay report: metrics JSON, PNG plots (matplotlib, headless) and a short markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from togethernet_ros.bag.replay_metrics import latency_series
from togethernet_ros.evaluation.atomic_write import write_text_atomically


def _plot_latency(trial: Any, path: Path) -> Path:
    # A Figure of its own, not pyplot's: no global backend to switch (headless machines) and
    # no figure registry to close.
    figure = Figure(figsize=(11, 4))
    timeline, histogram = figure.subplots(1, 2)
    for topic, (times, latencies) in latency_series(trial.sent, trial.received).items():
        timeline.plot(times, latencies, ".-", markersize=3, linewidth=0.8, label=topic)
        if len(latencies):
            histogram.hist(latencies, bins=30, alpha=0.6, label=topic)
    timeline.set(
        xlabel="send time (s)", ylabel="end-to-end latency (ms)", title="latency over time"
    )
    histogram.set(xlabel="latency (ms)", ylabel="frames", title="latency distribution")
    timeline.legend(fontsize=7)
    histogram.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _plot_resources(samples: list[dict], origin: float, path: Path) -> Path | None:
    if not samples:
        return None
    times = np.array([s["t"] - origin for s in samples])
    figure = Figure(figsize=(8, 3.5))
    cpu_axis = figure.subplots()
    cpu_axis.plot(times, [s["cpu_percent"] for s in samples], color="tab:red", label="CPU %")
    cpu_axis.set(xlabel="time (s)", ylabel="node CPU (% of one core)")
    memory_axis = cpu_axis.twinx()
    memory_axis.plot(times, [s["rss_mb"] for s in samples], color="tab:blue", label="RSS MiB")
    memory_axis.set_ylabel("node memory RSS (MiB)")
    gpu = [
        (t, s["gpu_util_percent"])
        for t, s in zip(times, samples, strict=True)
        if "gpu_util_percent" in s
    ]
    if gpu:
        cpu_axis.plot(*zip(*gpu, strict=True), color="tab:green", label="GPU util %")
    cpu_axis.legend(loc="upper left", fontsize=7)
    cpu_axis.set_title("detector_node resources")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _plot_peak(peak: dict, path: Path) -> Path | None:
    trials = [t for t in peak.get("trials", []) if t["rate"] > 0]
    if not trials:
        return None
    figure = Figure(figsize=(6, 3.5))
    axis = figure.subplots()
    fps = [t["rate"] * peak["recorded_fps"] for t in trials]
    axis.plot(fps, [100 * (t["drop_rate"] or 0) for t in trials], "o")
    axis.axhline(100 * peak["max_loss"], color="grey", linestyle="--", label="loss limit")
    axis.set(xlabel="offered frames/s", ylabel="dropped (%)", title="peak throughput search")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def replay_summary(result: Any, settings: dict | None = None) -> dict:
    """The JSON-ready report of a ReplayResult."""
    main = result.trials[0]
    return {
        "image_topics": result.image_topics,
        "rate": main.rate,
        "metrics": main.metrics,
        "node_resources": main.resources,
        "peak_throughput": result.peak,
        "node_command": result.node_command,
        "node_exit_code": result.node_exit_code,
        # The caller's settings (e.g. the command line's) on top of what the replay used.
        "settings": {**getattr(result, "settings", {}), **(settings or {})},
        "machine": getattr(result, "machine", {}),
        "bag_problems": result.problems,
    }


def _unreliable(latency: dict) -> bool:
    """Whether a p95 or p99 of these statistics comes from too few samples (see replay_metrics)."""
    return latency.get("p95_reliable") is False or latency.get("p99_reliable") is False


def marked_tail(latency: dict, percent: int) -> str:
    """A tail percentile, marked * when too few samples lie above it to estimate it."""
    value = _fmt(latency[f"p{percent}"])
    return f"{value}*" if latency.get(f"p{percent}_reliable") is False else value


def _fmt(value: Any, unit: str = "") -> str:
    return (
        "–"
        if value is None
        else f"{value:g}{unit}"
        if isinstance(value, float)
        else f"{value}{unit}"
    )


def _machine_line(machine: dict, settings: dict) -> str:
    if not machine:
        return "Machine: not recorded."
    gpus = ", ".join(machine.get("gpus") or []) or "none"
    return (
        f"Machine: {machine.get('cpu')} ({machine.get('cpus_usable')} of "
        f"{machine.get('cpu_count')} cores usable, {_fmt(machine.get('memory_gb'))} GB), "
        f"GPU {gpus}; {machine.get('os')}, Python {machine.get('python')}, ROS "
        f"{machine.get('ros_distro') or '–'} ({machine.get('rmw_implementation') or 'default RMW'})."
        f" Node parameters: `{settings.get('node_parameter_overlay', {})}`"
        f"{', params file ' + str(settings['params_file']) if settings.get('params_file') else ''}."
    )


def write_replay_report(
    result: Any, out_dir: Path, settings: dict | None = None
) -> dict[str, Path]:
    """Write replay.json, the plots and report.md into ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = replay_summary(result, settings)
    written = {"json": out_dir / "replay.json"}
    write_text_atomically(written["json"], json.dumps(summary, indent=2))
    main = result.trials[0]
    written["latency_plot"] = _plot_latency(main, out_dir / "latency.png")
    resources = _plot_resources(result.resource_samples, main.started_s, out_dir / "resources.png")
    if resources:
        written["resources_plot"] = resources
    if result.peak:
        peak_plot = _plot_peak(result.peak, out_dir / "peak_throughput.png")
        if peak_plot:
            written["peak_plot"] = peak_plot
    overall = main.metrics["overall"]
    rate = "as fast as accepted" if main.rate == 0 else f"{main.rate:g}× recorded rate"
    lines = [
        "# Replay report",
        "",
        f"Replayed {', '.join(result.image_topics)} into a real `detector_node` process over DDS "
        f"({rate}).",
        "",
        _machine_line(summary["machine"], summary["settings"]),
        "",
        "| camera | sent | received | dropped | output Hz | latency p50 / p95 / p99 / max (ms) | jitter (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for topic, camera in main.metrics["cameras"].items():
        latency = camera["latency_ms"]
        lines.append(
            f"| {topic} | {camera['sent']} | {camera['received']} | {camera['dropped']} | "
            f"{_fmt(camera['output_rate_hz'])} | {_fmt(latency['p50'])} / {marked_tail(latency, 95)} / "
            f"{marked_tail(latency, 99)} / {_fmt(latency['max'])} | {_fmt(camera['jitter_ms'])} |"
        )
    latency = overall["latency_ms"]
    resources = main.resources
    lines += [
        "",
        f"Overall: {overall['received']}/{overall['sent']} frames, throughput "
        f"{_fmt(overall['throughput_fps'])} frames/s, latency p50 {_fmt(latency['p50'])} ms, "
        f"p99 {marked_tail(latency, 99)} ms"
        + (
            f" (* from {latency['count']} samples: fewer than a tail needs)."
            if _unreliable(latency)
            else "."
        ),
        f"Node: CPU mean {_fmt(resources.get('cpu_percent_mean'))} % (max "
        f"{_fmt(resources.get('cpu_percent_max'))} %, {resources.get('cpu_count')} cores), RSS max "
        f"{_fmt(resources.get('rss_mb_max'))} MiB"
        + (
            f", GPU util mean {_fmt(resources.get('gpu_util_percent_mean'))} %, GPU memory max "
            f"{_fmt(resources.get('gpu_memory_used_mb_max'))} MiB."
            if "gpu_util_percent_mean" in resources
            else "."
        ),
    ]
    if result.peak:
        peak = result.peak
        lines += [
            "",
            f"Peak throughput (≤ {peak['max_loss']:.0%} loss): "
            + (
                f"{_fmt(peak.get('best_fps'))} frames/s offered "
                f"(×{_fmt(peak.get('best_rate'))} recorded rate; sent at "
                f"{_fmt(peak.get('best_sent_fps'))} frames/s, "
                f"{_fmt(peak.get('best_throughput_fps'))} frames/s came back); "
                if peak.get("best_rate")
                else f"search skipped ({peak['skipped']}); "
                if peak.get("skipped")
                else "no tried rate stayed under the loss limit; "
            )
            + (
                "every tried rate passed, so the peak is higher (more trials find it); "
                if peak.get("at_search_ceiling")
                else ""
            )
            + f"as fast as accepted: {_fmt(peak['accepted_fps'])} frames/s.",
        ]
    lines += ["", "![latency](latency.png)"]
    if "resources_plot" in written:
        lines.append("![resources](resources.png)")
    if "peak_plot" in written:
        lines.append("![peak](peak_throughput.png)")
    written["markdown"] = out_dir / "report.md"
    write_text_atomically(written["markdown"], "\n".join(lines) + "\n")
    return written
