"""CPU thread limits: the shared rule (cpu_threads.py), `predict --threads` and `bag run --num-threads`.

The node's parameter `num_threads` is tested in test/ros/test_num_threads_parameter.py.
"""

from __future__ import annotations

import cv2
import pytest
import torch

from togethernet_ros.inference.cpu_threads import limit_cpu_threads

from .conftest import bag_run_settings, scene


def test_a_positive_count_limits_torch_and_is_passed_on(torch_threads):
    assert limit_cpu_threads(1) == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("default", [None, 0])
def test_none_and_zero_keep_the_libraries_default(torch_threads, default):
    assert limit_cpu_threads(default) is None  # ONNX Runtime then takes its default too
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "num_threads must be >= 0 (0: every core), got -1"),
        (True, "num_threads must be an integer (0: every core), got True"),
        (1.5, "num_threads must be an integer (0: every core), got 1.5"),
    ],
)
def test_bad_counts_are_refused_before_torch_is_touched(torch_threads, value, message):
    with pytest.raises(ValueError) as refused:
        limit_cpu_threads(value)
    assert str(refused.value) == message
    assert torch.get_num_threads() == 2


def test_predict_runs_on_the_threads_it_is_given(tmp_path, checkpoint_path, torch_threads):
    from togethernet_ros.cli import main

    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), scene(96, 128))
    argv = ["predict", "--weights", str(checkpoint_path), "--source", str(source)]
    argv += ["--output", str(tmp_path / "out"), "--device", "cpu", "--input-size", "256"]
    assert main([*argv, "--no-dehazed", "--no-annotated", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1


def test_bag_run_takes_num_threads_from_the_node_parameters(tmp_path):
    assert bag_run_settings()["num_threads"] == 0  # config/detect.yaml, as the node
    params = tmp_path / "params.yaml"
    params.write_text("detector:\n  ros__parameters:\n    num_threads: 3\n")
    assert bag_run_settings("--params-file", str(params))["num_threads"] == 3
    chosen = bag_run_settings("--params-file", str(params), "--num-threads", "1")
    assert chosen["num_threads"] == 1  # the command line wins


def test_bag_run_limits_torch_and_onnxruntime(onnx_pair, torch_threads):
    from togethernet_ros.bag.detector_options import create_detector_from_settings

    settings = bag_run_settings("--num-threads", "1")
    settings.update(
        weights="", backend="onnxruntime", onnx_path=str(onnx_pair), device="cpu",
        input_size=(256, 256), allow_untrained_weights=True,
    )  # fmt: skip
    detector = create_detector_from_settings(settings)
    try:
        session = detector._sessions[False]
        assert session.get_session_options().intra_op_num_threads == 1
        assert torch.get_num_threads() == 1  # its letterbox and NMS run in torch
    finally:
        detector.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "parameter 'num_threads' must be >= 0, got -1"),
        ("1025", "parameter 'num_threads' must be <= 1024, got 1025"),
        ("'4'", "parameter 'num_threads' must be an integer, got '4'"),
    ],
)
def test_bag_run_refuses_what_the_node_refuses(tmp_path, torch_threads, value, message):
    from togethernet_ros.bag.detector_options import create_detector_from_settings

    params = tmp_path / "params.yaml"
    params.write_text(f"detector:\n  ros__parameters:\n    num_threads: {value}\n")
    with pytest.raises(ValueError) as refused:
        # Refused with the params file's other values, before any model loads.
        create_detector_from_settings(bag_run_settings("--params-file", str(params)))
    assert str(refused.value) == f"params file {params}: {message}"
    assert torch.get_num_threads() == 2
