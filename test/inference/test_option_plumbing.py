"""Options of `predict` and `bench` reach the code that uses them (or say they cannot)."""

from __future__ import annotations

import json
import logging
import subprocess

from togethernet_ros.cli import main
from togethernet_ros.inference import benchmark, peak_rss

from .conftest import scene


def test_bench_peak_rss_probe_runs_on_the_benchmarked_device_and_precision(monkeypatch, tmp_path):
    # The probe is a child process: what it is not told, it does not do. A GPU benchmark whose
    # peak-RSS line measured a CPU fp32 run would report another configuration's memory.
    commands = []

    def fake_run(command, **_kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, '{"peak_rss_mb": 1.0}\n', "")

    monkeypatch.setattr(peak_rss.subprocess, "run", fake_run)
    plan = benchmark.BenchmarkPlan(
        backends=("torch",),
        input_sizes=((256, 256),),
        device="cuda:0",
        precision="fp16",
        cache_dir=str(tmp_path),
    )
    assert benchmark._peak_rss(plan, {}) == {"torch 256x256 b1 restore": 1.0}
    (command,) = commands

    def value(option: str) -> str | None:
        return command[command.index(option) + 1] if option in command else None

    assert value("--device") == "cuda:0" and value("--precision") == "fp16"
    assert value("--cache-dir") == str(tmp_path)


def test_the_peak_rss_probe_builds_the_detector_it_is_told_to(checkpoint_path, capsys):
    argv = ["--backend", "torch", "--input-size", "256x256", "--weights", str(checkpoint_path)]
    assert peak_rss.main([*argv, "--device", "cpu", "--precision", "fp32"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["backend"] == "torch-cpu-fp32" and printed["peak_rss_mb"] > 0


def test_predict_says_when_onnx_options_do_not_apply_to_the_torch_backend(
    tmp_path, checkpoint_path, caplog
):
    # --onnx and --cache-dir are ONNX Runtime options: with the torch backend (the default)
    # they cannot take effect, and a user who forgot --backend onnxruntime must be told.
    import cv2

    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), scene(64, 64))
    argv = ["predict", "--weights", str(checkpoint_path), "--source", str(source)]
    argv += ["--output", str(tmp_path / "out"), "--device", "cpu", "--input-size", "128"]
    argv += ["--no-dehazed", "--no-annotated", "--onnx", str(tmp_path / "m.onnx")]
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("--onnx" in m and "--cache-dir" in m and "torch" in m for m in warnings), warnings
    assert not (tmp_path / "m.onnx").exists()
