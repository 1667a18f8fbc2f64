"""Parameter specs, YAML defaults and validation messages of the detector node (no ROS needed)."""

from __future__ import annotations

import pytest

from togethernet_ros.ros.node_settings import (
    PARAMETER_SPECS,
    SPECS_BY_NAME,
    SettingsError,
    check_value,
    default_config_path,
    load_default_parameters,
    validate_settings,
)


@pytest.fixture
def defaults():
    values = load_default_parameters(default_config_path())
    values["allow_untrained_weights"] = True
    return values


def test_every_declared_parameter_has_exactly_one_yaml_default():
    values = load_default_parameters(default_config_path())
    assert set(values) == {spec.name for spec in PARAMETER_SPECS}


def test_default_weights_are_the_shipped_demo_model():
    from togethernet_ros.model.weights_path import resolve_weights_path

    values = load_default_parameters(default_config_path())
    assert not values["allow_untrained_weights"]
    assert resolve_weights_path(values["weights"]).is_file()
    validate_settings(values)


def test_defaults_validate_and_expose_typed_settings(defaults):
    settings = validate_settings(defaults)
    assert settings.input_size == (384, 640)
    assert settings["max_batch_wait_ms"] == -1.0  # auto: the node picks it for its device
    assert settings.class_filter is None
    assert settings.tracker_config().min_hits == defaults["tracking.min_hits"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("input_size", [300], "300 is not a multiple of 128"),
        ("input_size", [384, 640, 3], r"\[side\] or \[height, width\]"),
        ("conf_threshold", 1.5, "'conf_threshold' must be <= 1.0"),
        ("nms_threshold", "high", "'nms_threshold' must be a finite number"),
        ("backend", "tensorflow", r"'backend' must be one of \['torch', 'onnxruntime'\]"),
        ("max_batch_size", 0, "'max_batch_size' must be >= 1"),
        ("image_topics", [], "at least one camera topic"),
        ("image_topics", ["/a/image", "/a/image"], "lists a topic twice"),
        ("image_topics", ["/a/image", "/a/image_rect"], "would both publish on '/a/detections'"),
        ("publish_dehazed", "yes", "'publish_dehazed' must be true or false"),
        ("tracking.min_hits", 2.5, "'tracking.min_hits' must be an integer"),
        ("max_batch_wait_ms", -0.5, r"'max_batch_wait_ms' must be -1 \(auto\) or >= 0"),
        ("max_batch_wait_ms", -3.0, "'max_batch_wait_ms' must be >= -1.0"),
        ("torch_compile", "reduce-overhead", "'torch_compile' must be one of"),
    ],
)
def test_bad_values_are_rejected_with_a_message_naming_the_parameter(
    defaults, name, value, message
):
    defaults[name] = value
    with pytest.raises(SettingsError, match=message):
        validate_settings(defaults)


def test_missing_weights_without_permission_explains_both_ways_out(defaults):
    defaults["weights"] = ""
    defaults["allow_untrained_weights"] = False
    with pytest.raises(SettingsError, match=r"weights:=.*allow_untrained_weights:=true"):
        validate_settings(defaults)
    # An exported ONNX file needs no checkpoint next to it.
    defaults["onnx_path"] = "model.onnx"
    with pytest.raises(SettingsError, match="onnx_path"):
        validate_settings(defaults)  # the torch backend cannot run it
    defaults["backend"] = "onnxruntime"
    assert validate_settings(defaults)["onnx_path"] == "model.onnx"


def test_cross_parameter_rules(defaults):
    defaults["tracking.low_score_threshold"] = 0.9
    defaults["tracking.high_score_threshold"] = 0.5
    with pytest.raises(SettingsError, match="must not exceed"):
        validate_settings(defaults)
    defaults["tracking.low_score_threshold"] = 0.1
    defaults["precision"], defaults["device"] = "fp16", "cpu"
    with pytest.raises(SettingsError, match="fp16 needs"):
        validate_settings(defaults)
    defaults["precision"] = "auto"  # fp32 on the CPU: no conflict
    assert validate_settings(defaults)["precision"] == "auto"
    defaults["precision"] = "fp32"
    defaults["torch_compile"], defaults["backend"] = "default", "onnxruntime"
    with pytest.raises(SettingsError, match=r"'torch_compile' .* needs backend 'torch'"):
        validate_settings(defaults)
    defaults["backend"] = "torch"
    assert validate_settings(defaults)["torch_compile"] == "default"


def test_class_filter_and_square_input(defaults):
    defaults["classes"] = ["person", "car"]
    defaults["input_size"] = [512]
    settings = validate_settings(defaults)
    assert settings.class_filter == frozenset({"person", "car"})
    assert settings.input_size == (512, 512)
    defaults["input_size"] = 640  # an integer is a square too (`-p input_size:=640`)
    assert validate_settings(defaults).input_size == (640, 640)
    defaults["max_batch_wait_ms"] = 5  # an integer where a double is declared
    assert validate_settings(defaults)["max_batch_wait_ms"] == 5.0


def test_unknown_and_missing_parameters(defaults):
    with pytest.raises(SettingsError, match="unknown parameter"):
        validate_settings({**defaults, "colour": "red"})
    del defaults["weights"]
    with pytest.raises(SettingsError, match="missing parameter"):
        validate_settings(defaults)


def test_a_bare_off_is_read_as_torch_compile_off():
    # `-p torch_compile:=off` reaches the node as false (YAML 1.1) and was refused as "must be
    # a string, got False" although off is the documented value.
    import yaml

    spec = SPECS_BY_NAME["torch_compile"]
    assert check_value(spec, yaml.safe_load("off")) == "off"
    with pytest.raises(SettingsError, match="must be a string"):
        check_value(spec, True)
    with pytest.raises(SettingsError, match="must be true or false"):
        check_value(SPECS_BY_NAME["publish_dehazed"], "maybe")


def test_command_line_values_that_rcl_dropped_are_found():
    from togethernet_ros.ros.node_settings import command_line_values, values_not_received

    argv = [
        "detector_node", "--ros-args", "--params-file", "detect.yaml",
        "-p", "publish_dehazed:=maybe", "-p", "max_batch_wait_ms:=5",
        "--param", "conf_threshold:=1e-1", "-p", "input_size:=[384, 640]",
        "-p", "detector:classes:=[car]", "-r", "__ns:=/robot", "--", "-p", "other:=1",
    ]  # fmt: skip
    given = command_line_values(argv)
    # Typed as rcl types -p values: 1e-1 is the double 0.1 (YAML 1.1 would make it text).
    assert given == {
        "publish_dehazed": "maybe",
        "max_batch_wait_ms": 5,
        "conf_threshold": 0.1,
        "input_size": [384, 640],
    }
    assert isinstance(given["conf_threshold"], float)
    # What the node received: rcl kept the file's true for the text, the rest arrived.
    received = {
        "publish_dehazed": True,
        "max_batch_wait_ms": 5,
        "conf_threshold": 0.1,
        "input_size": [384, 640],
    }
    assert values_not_received(given, received) == ["publish_dehazed"]
    assert values_not_received({"publish_dehazed": 1}, {"publish_dehazed": True}) == [
        "publish_dehazed"
    ]
    assert values_not_received({"conf_threshold": 2}, {"conf_threshold": 2.0}) == []


def test_command_line_values_are_typed_as_rcl_types_them():
    # rcl, not YAML 1.1: y is true, ~ is text, 1e-3 a double; quoted stays text.
    from togethernet_ros.ros.node_settings import command_line_values, values_not_received

    argv = [
        "detector_node", "--ros-args", "-p", "prepare_frames_ahead:=y", "-p", "weights:=~",
        "-p", "nms_threshold:=1e-3", "-p", "conf_threshold:='0.1'", "-p", "classes:=[car, 0.5]",
        "-p", "onnx_path:=",
    ]  # fmt: skip
    given = command_line_values(argv)
    # A mixed list and an empty value are left out: rcl refuses them, the node never starts.
    assert given == {
        "prepare_frames_ahead": True,
        "weights": "~",
        "nms_threshold": 0.001,
        "conf_threshold": "0.1",
    }
    received = {
        "prepare_frames_ahead": True,
        "weights": "~",
        "nms_threshold": 0.001,
        "conf_threshold": 0.1,
    }
    # Quoted, the value is text, which rcl does not give a double parameter: the node runs
    # with the params file's number, whatever it is.
    assert values_not_received(given, received) == ["conf_threshold"]


def test_max_detections_defaults_to_300_and_may_change_at_run_time(defaults):
    spec = SPECS_BY_NAME["max_detections"]
    assert spec.kind is int and not spec.read_only
    assert (spec.minimum, spec.maximum) == (1, 100_000)
    assert defaults["max_detections"] == 300  # config/detect.yaml
    assert validate_settings(defaults)["max_detections"] == 300
    for value in (1, 100_000):
        defaults["max_detections"] = value
        assert validate_settings(defaults)["max_detections"] == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "parameter 'max_detections' must be >= 1, got 0"),
        (-1, "parameter 'max_detections' must be >= 1, got -1"),
        (100_001, "parameter 'max_detections' must be <= 100000, got 100001"),
        (2.5, "parameter 'max_detections' must be an integer, got 2.5"),
        (True, "parameter 'max_detections' must be an integer, got True"),
    ],
)
def test_bad_max_detections_are_refused_naming_the_parameter(defaults, value, message):
    defaults["max_detections"] = value
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        validate_settings(defaults)


def test_num_threads_defaults_to_every_core_and_is_set_at_start(defaults):
    spec = SPECS_BY_NAME["num_threads"]
    assert spec.kind is int and spec.read_only  # applied when configure loads the model
    assert (spec.minimum, spec.maximum) == (0, 1024)
    assert "process-wide" in spec.description
    assert defaults["num_threads"] == 0  # config/detect.yaml: the libraries' default
    assert validate_settings(defaults)["num_threads"] == 0
    for value in (1, 4, 1024):
        defaults["num_threads"] = value
        assert validate_settings(defaults)["num_threads"] == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "parameter 'num_threads' must be >= 0, got -1"),
        (1025, "parameter 'num_threads' must be <= 1024, got 1025"),
        (2.5, "parameter 'num_threads' must be an integer, got 2.5"),
        (True, "parameter 'num_threads' must be an integer, got True"),
        ("4", "parameter 'num_threads' must be an integer, got '4'"),
    ],
)
def test_bad_num_threads_are_refused_naming_the_parameter(defaults, value, message):
    defaults["num_threads"] = value
    with pytest.raises(SettingsError) as refused:
        validate_settings(defaults)
    assert str(refused.value) == message
