"""`bag run` on real bags: every frame processed, outputs readable by rosbags and mcap."""

from __future__ import annotations

import numpy as np
import pytest
from mcap.reader import make_reader

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.detection_messages import message_to_detections
from togethernet_ros.bag.image_codec import IMAGE_TYPE, decode_image_message
from togethernet_ros.vision.draw import draw_detections

from .bag_samples import START_NS, read_messages, scene
from .blob_detector import BlobDetector

FRONT, SIDE = "/cam_front/image_raw", "/cam_side/image_raw/compressed"


@pytest.mark.parametrize(("in_storage", "out_storage"), [("mcap", "mcap"), ("sqlite3", "sqlite3")])
def test_bag_run_writes_all_outputs(camera_bag, tmp_path, in_storage, out_storage):
    source = camera_bag(storage=in_storage, frames=8)
    output = tmp_path / "out"
    detector = BlobDetector()
    options = BagRunOptions(storage=out_storage, annotated=True)
    progress = []
    report = run_bag(
        source, output, detector, options, draw_detections, lambda d, t: progress.append((d, t))
    )
    assert report.frames_processed == 16
    assert progress[-1] == (16, 16)
    # As live: the first frame goes alone (the side camera is not known yet), the side camera's
    # first frame alone after the 20 ms deadline, then every pair of frames forms one batch.
    assert report.pipeline["batch_sizes"] == {"1": 2, "2": 7}
    assert detector.batch_sizes == [1, 1] + [2] * 7
    assert report.problems == []
    messages = read_messages(output)
    for namespace in ("/cam_front", "/cam_side"):
        for suffix in ("detections", "detections_raw", "dehazed/image_raw", "debug_image"):
            assert len(messages[f"{namespace}/{suffix}"]) == 8, (namespace, suffix)
        assert len(messages[f"{namespace}/label_info"]) == 1
    assert len(messages[FRONT]) == len(messages[SIDE]) == 8  # inputs copied
    names = BlobDetector.class_names
    raw = [message_to_detections(m, names) for _, m in messages["/cam_front/detections_raw"]]
    for index, detections in enumerate(raw):
        assert detections.stamp_ns == START_NS + index * 100_000_000
        np.testing.assert_allclose(detections.boxes, [[8 + 4 * index, 20, 41 + 4 * index, 71]])
    smoothed = [message_to_detections(m, names) for _, m in messages["/cam_front/detections"]]
    # Tracks are published after min_hits (3) frames and keep one id.
    assert [len(d) for d in smoothed] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert {int(d.track_ids[0]) for d in smoothed[2:]} == {1}
    assert np.abs(smoothed[-1].boxes - raw[-1].boxes).max() < 4.0
    _, dehazed = messages["/cam_front/dehazed/image_raw"][3]
    np.testing.assert_array_equal(decode_image_message(dehazed), 255 - scene(3))
    if out_storage == "mcap":
        [mcap_file] = output.glob("*.mcap")
        with mcap_file.open("rb") as stream:
            summary = make_reader(stream).get_summary()
        assert summary.statistics.message_count == sum(len(v) for v in messages.values())


def test_bag_run_one_topic_without_copies_and_max_frames(camera_bag, tmp_path):
    source = camera_bag(frames=6)
    output = tmp_path / "out"
    options = BagRunOptions(
        image_topics=[SIDE], copy_inputs=False, dehazed=False, raw_detections=False, max_frames=4
    )
    report = run_bag(source, output, BlobDetector(), options)
    assert report.frames_processed == 4
    assert sorted(read_messages(output)) == ["/cam_side/detections", "/cam_side/label_info"]
    assert 0.0 <= report.overhead_fraction <= 1.0


def test_bag_run_reports_problems_and_keeps_going(camera_bag, tmp_path):
    source = camera_bag(frames=4, stamps=[0, 300, 100, 400])
    report = run_bag(
        source, tmp_path / "out", BlobDetector(), BagRunOptions(image_topics=[FRONT, "/nope"])
    )
    assert report.frames_processed == 4
    kinds = sorted(p["kind"] for p in report.problems)
    assert kinds == ["missing_topic", "out_of_order"]


def test_bag_run_refuses_cameras_that_would_share_output_topics(camera_bag, tmp_path):
    # Both at the root: their detections would interleave on /detections.
    topics = [("/front_camera", IMAGE_TYPE), ("/rear_camera", IMAGE_TYPE)]
    source = camera_bag(frames=2, topics=topics)
    with pytest.raises(BagError, match="'/front_camera' and '/rear_camera' would both publish"):
        run_bag(source, tmp_path / "out", BlobDetector())
    # One of them chosen: fine.
    report = run_bag(
        source, tmp_path / "one", BlobDetector(), BagRunOptions(image_topics=["/rear_camera"])
    )
    assert report.frames_processed == 2


def test_bag_run_cli_with_the_real_untrained_detector(camera_bag, tmp_path, capsys):
    from togethernet_ros.cli import main

    source = camera_bag(frames=3)
    output = tmp_path / "out"
    report = tmp_path / "report.json"
    code = main(
        [
            "bag", "run", str(source), "--output", str(output), "--allow-untrained-weights",
            "--input-size", "128", "--report", str(report), "--storage", "sqlite3",
        ]
    )  # fmt: skip
    assert code == 0
    summary = __import__("json").loads(report.read_text())
    assert summary["frames_processed"] == 6
    assert summary["backend"].startswith("torch")
    messages = read_messages(output)
    dehazed = messages["/cam_front/dehazed/image_raw"]
    assert len(dehazed) == 3 and (dehazed[0][1].height, dehazed[0][1].width) == (96, 128)
    assert "bag I/O + pipeline overhead" in capsys.readouterr().out


def test_bag_run_takes_the_shipped_node_parameters_file(camera_bag, tmp_path, repo_root):
    # config/detect.yaml says device "auto" and precision "auto", as the node reads them; the bag
    # commands build their detector from the same file and must accept both.
    from togethernet_ros.cli import main

    report = tmp_path / "report.json"
    code = main(
        [
            "bag", "run", str(camera_bag(frames=1)), "--output", str(tmp_path / "out"),
            "--params-file", str(repo_root / "config" / "detect.yaml"), "--input-size", "128",
            "--report", str(report), "--storage", "sqlite3",
        ]
    )  # fmt: skip
    assert code == 0
    summary = __import__("json").loads(report.read_text())
    assert summary["frames_processed"] == 2
    expected = "torch-cuda-fp16" if __import__("torch").cuda.is_available() else "torch-cpu-fp32"
    assert summary["backend"] == expected


def test_bag_commands_read_the_node_tracking_settings(tmp_path, repo_root):
    import argparse

    import yaml

    from togethernet_ros.bag.detector_options import resolve_detector_settings
    from togethernet_ros.tracking.config import TrackerConfig

    shipped = repo_root / "config" / "detect.yaml"
    settings = resolve_detector_settings(argparse.Namespace(params_file=shipped))
    tracking = yaml.safe_load(shipped.read_text())["/**"]["ros__parameters"]["tracking"]
    assert settings["tracker"] == {k: v for k, v in tracking.items() if k != "enabled"}
    assert TrackerConfig.from_dict(settings["tracker"]).min_hits == tracking["min_hits"]
    # Dotted names, as `ros2 param dump` can write them, win over the nested mapping.
    dotted = tmp_path / "dotted.yaml"
    dotted.write_text(
        "detector:\n  ros__parameters:\n    tracking:\n      min_hits: 2\n"
        "    tracking.max_misses: 9\n    tracking.min_hits: 4\n"
    )
    settings = resolve_detector_settings(argparse.Namespace(params_file=dotted))
    # On top of the node's own tracking settings, as the node layers a params file.
    expected = {k: v for k, v in tracking.items() if k != "enabled"} | {
        "min_hits": 4,
        "max_misses": 9,
    }
    assert settings["tracker"] == expected


def test_bag_run_cli_refuses_untrained_without_the_flag(camera_bag, tmp_path, capsys):
    from togethernet_ros.cli import main

    command = ["bag", "run", str(camera_bag(frames=1)), "--output", str(tmp_path / "o")]
    assert main([*command, "--weights", ""]) == 2
    error = capsys.readouterr().err
    assert "no model weights given" in error and "--allow-untrained" in error


def test_bag_run_without_options_detects_as_the_node_does(camera_bag, tmp_path, repo_root):
    """No --params-file: the node's own config/detect.yaml gives the defaults (demo weights)."""
    import argparse

    import yaml

    from togethernet_ros.bag.detector_options import resolve_detector_settings
    from togethernet_ros.cli import main

    shipped = yaml.safe_load((repo_root / "config" / "detect.yaml").read_text())
    node = shipped["/**"]["ros__parameters"]
    settings = resolve_detector_settings(argparse.Namespace(params_file=None))
    assert settings["weights"] == node["weights"] and settings["weights"]
    assert settings["conf_threshold"] == node["conf_threshold"]
    assert settings["tracker"] is not None
    output = tmp_path / "o"
    command = ["bag", "run", str(camera_bag(frames=2)), "--output", str(output)]
    assert main([*command, "--input-size", "128", "--device", "cpu"]) == 0
    assert (output / "metadata.yaml").is_file()
    # The node's outputs for every frame, raw and smoothed (the shipped tracking is on).
    messages = read_messages(output)
    for topic in ("/cam_front/detections_raw", "/cam_front/detections"):
        assert len(messages[topic]) == 2, topic


def test_a_partial_params_file_keeps_the_node_defaults_it_does_not_set(tmp_path, repo_root):
    """--params-file goes on top of config/detect.yaml, not on top of the built-in fallbacks."""
    import argparse

    import yaml

    from togethernet_ros.bag.detector_options import FALLBACK_DEFAULTS, resolve_detector_settings

    node = yaml.safe_load((repo_root / "config" / "detect.yaml").read_text())["/**"][
        "ros__parameters"
    ]
    partial = tmp_path / "partial.yaml"
    partial.write_text("detector:\n  ros__parameters:\n    conf_threshold: 0.4\n")
    settings = resolve_detector_settings(argparse.Namespace(params_file=partial))
    assert settings["conf_threshold"] == 0.4
    assert settings["weights"] == node["weights"] != FALLBACK_DEFAULTS["weights"]
    assert settings["nms_threshold"] == node["nms_threshold"]
    assert settings["tracker"]["min_hits"] == node["tracking"]["min_hits"]


def test_the_fallback_defaults_are_the_nodes_own_but_for_the_weights(repo_root):
    """Without config/detect.yaml (no share folder) bag run must not detect differently."""
    import yaml

    from togethernet_ros.bag.detector_options import FALLBACK_DEFAULTS

    node = yaml.safe_load((repo_root / "config" / "detect.yaml").read_text())["/**"][
        "ros__parameters"
    ]
    differing = {key for key, value in FALLBACK_DEFAULTS.items() if node[key] != value}
    assert differing == {"weights"}


def test_bag_run_keeps_a_fading_object_tracked_through_low_scores(
    camera_bag, tmp_path, monkeypatch
):
    """Fog: scores dip below conf_threshold; the tracker's low stage must still get those boxes.

    The detector is asked for the tracker's low_score_threshold (0.1), the raw detections are
    cut back to conf_threshold (0.3), and the smoothed track lives through the faded frames.
    """
    from support.stand_in_detectors import FadingObjectDetector

    from togethernet_ros.bag import bag_command
    from togethernet_ros.cli import main

    faded_frames = 8  # more than max_misses (5): a track fed nothing would die
    stand_in = FadingObjectDetector([0.9] * 4 + [0.2] * faded_frames)

    def create(settings):
        stand_in.conf_threshold = settings["conf_threshold"]
        stand_in.nms_threshold = settings["nms_threshold"]
        return stand_in

    monkeypatch.setattr(bag_command, "create_detector_from_settings", create)
    params = tmp_path / "params.yaml"
    params.write_text(
        "detector:\n  ros__parameters:\n    conf_threshold: 0.3\n"
        "    tracking:\n      low_score_threshold: 0.1\n      high_score_threshold: 0.5\n"
        "      min_hits: 3\n      max_misses: 5\n"
    )
    output = tmp_path / "out"
    source = camera_bag(frames=4 + faded_frames, topics=(("/cam_front/image_raw", IMAGE_TYPE),))
    command = ["bag", "run", str(source), "--output", str(output), "--params-file", str(params)]
    assert main(command) == 0
    assert stand_in.conf_threshold == pytest.approx(0.1)
    messages = read_messages(output)
    names = BlobDetector.class_names
    raw = [message_to_detections(m, names) for _, m in messages["/cam_front/detections_raw"]]
    smoothed = [message_to_detections(m, names) for _, m in messages["/cam_front/detections"]]
    assert [len(d.scores) for d in raw] == [1] * 4 + [0] * faded_frames
    # Published from the third hit on, then kept by every faded box, with one track id.
    assert [len(d.scores) for d in smoothed] == [0, 0] + [1] * (2 + faded_frames)
    assert {int(t) for d in smoothed for t in d.track_ids} == {1}
    assert smoothed[-1].scores[0] == pytest.approx(0.2)


def test_bag_run_runs_the_onnx_export_its_params_file_names(camera_bag, tmp_path, repo_root):
    """The node runs `onnx_path` (with `weights: ''` the export is the model); so must `bag run`."""
    from togethernet_ros.cli import main

    onnx = tmp_path / "demo.onnx"
    export = ["export", "--weights", str(repo_root / "models" / "togethernet_vtest_384.pt")]
    export += ["--output", str(onnx), "--input-size", "128x256", "--variant", "detect"]
    assert main([*export, "--no-verify"]) == 0
    params = tmp_path / "params.yaml"
    params.write_text(
        "detector:\n  ros__parameters:\n    backend: onnxruntime\n    weights: ''\n"
        f"    onnx_path: {onnx.with_name('demo.detect.onnx')}\n"
        f"    engine_cache_dir: {tmp_path / 'cache'}\n    input_size: [128, 256]\n"
    )
    report = tmp_path / "report.json"
    command = ["bag", "run", str(camera_bag(frames=2)), "--output", str(tmp_path / "out")]
    command += ["--params-file", str(params), "--device", "cpu", "--no-dehazed"]
    assert main([*command, "--report", str(report)]) == 0
    summary = __import__("json").loads(report.read_text())
    assert summary["backend"].startswith("onnxruntime") and summary["frames_processed"] == 4
    # The named export ran: nothing was exported into a cache from the checkpoint instead.
    assert not (tmp_path / "cache").exists()


def test_bag_run_publishes_only_the_classes_its_params_file_names(
    camera_bag, tmp_path, monkeypatch, capsys
):
    """`classes` filters the node's outputs (raw and smoothed); `bag run` must write the same."""
    from support.cli_refusal import refused
    from support.stand_in_detectors import FadingObjectDetector

    from togethernet_ros.bag import bag_command
    from togethernet_ros.cli import main

    stand_in = FadingObjectDetector([0.9] * 6)  # one person in every frame

    def create(settings):
        stand_in.conf_threshold = settings["conf_threshold"]
        return stand_in

    monkeypatch.setattr(bag_command, "create_detector_from_settings", create)
    source = camera_bag(frames=6, topics=(("/cam_front/image_raw", IMAGE_TYPE),))
    params = tmp_path / "params.yaml"
    params.write_text("detector:\n  ros__parameters:\n    classes: [car]\n")
    output = tmp_path / "out"
    command = ["bag", "run", str(source), "--output", str(output), "--params-file", str(params)]
    assert main(command) == 0
    messages = read_messages(output)
    for topic in ("/cam_front/detections_raw", "/cam_front/detections"):
        assert [len(m.detections) for _, m in messages[topic]] == [0] * 6, topic
    # A class the model does not have is refused by name, as the node refuses it.
    params.write_text("detector:\n  ros__parameters:\n    classes: [pedestrian]\n")
    stand_in.frames = 0
    refused(capsys, [*command, "--overwrite"], r"\['pedestrian'\], which the model does not have")
    # Beside 'all' too, as the node refuses it.
    params.write_text("detector:\n  ros__parameters:\n    classes: [all, pedestrian]\n")
    refused(capsys, [*command, "--overwrite"], r"\['pedestrian'\], which the model does not have")


def test_bag_run_times_unstamped_frames_by_their_log_time_as_the_node_does(camera_bag, tmp_path):
    """Header stamp 0: the node smooths by arrival, so `tracking.max_gap_s` still applies."""
    from support.stand_in_detectors import FadingObjectDetector

    from togethernet_ros.tracking.config import TrackerConfig

    # Unstamped frames logged 2 s apart: every gap exceeds max_gap_s (1 s), so each frame
    # starts the tracker afresh and no track reaches min_hits (3).
    source = camera_bag(
        frames=6,
        topics=(("/cam_front/image_raw", IMAGE_TYPE),),
        stamps=[-START_NS] * 6,
        period_ns=2_000_000_000,
    )
    output = tmp_path / "out"
    options = BagRunOptions(tracker_config=TrackerConfig(max_gap_s=1.0, min_hits=3))
    run_bag(source, output, FadingObjectDetector([0.9] * 6), options)
    messages = read_messages(output)
    assert [len(m.detections) for _, m in messages["/cam_front/detections_raw"]] == [1] * 6
    assert [len(m.detections) for _, m in messages["/cam_front/detections"]] == [0] * 6


def test_the_bag_detector_is_sized_for_the_params_batch(monkeypatch, repo_root):
    """GPU buffers, CUDA graphs and TensorRT profiles follow max_batch_size, as in the node."""
    import argparse

    import togethernet_ros.inference as inference
    from togethernet_ros.bag.detector_options import (
        create_detector_from_settings,
        resolve_detector_settings,
    )

    captured = {}
    monkeypatch.setattr(inference, "create_detector", lambda *a, **kw: captured.update(kw))
    settings = resolve_detector_settings(argparse.Namespace(params_file=None, max_batch_size=3))
    create_detector_from_settings(settings)
    assert captured["max_batch_size"] == 3
