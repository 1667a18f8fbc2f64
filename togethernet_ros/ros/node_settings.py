"""The detector node's parameters: one table of specs, validation, and the YAML defaults.

Plain Python (no rclpy) so validation and its messages are unit-tested without ROS. The node
declares every parameter from ``PARAMETER_SPECS`` with a descriptor built from the same entry; the
default values come only from ``config/detect.yaml`` (the single source of defaults).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from togethernet_ros.bag.output_topics import check_distinct_outputs
from togethernet_ros.inference.model_compilation import COMPILE_MODES
from togethernet_ros.ros.params_file import (
    PARAM_FLAGS,
    ParamsFileError,
    read_sections,
    ros_args_options,
    ros_value,
)
from togethernet_ros.ros.settings_error import SettingsError
from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.score_gate import detector_threshold, tracker_config_behind

CONFIG_FILE_NAME = "detect.yaml"
# The node's name and namespace unless remapped: whose sections of the defaults file apply.
DEFAULT_NODE_FQN = "/detector"
ALL_CLASSES = "all"
TRACKING_PREFIX = "tracking."


@dataclass(frozen=True)
class ParameterSpec:
    """How one ROS parameter is declared and checked."""

    name: str
    kind: type  # bool, int, float, str, list (of str) or tuple (of int)
    description: str
    read_only: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "image_topics",
        list,
        "Camera topics: sensor_msgs/Image, or CompressedImage when the name ends in /compressed",
        read_only=True,
    ),
    ParameterSpec("weights", str, "TogetherNet checkpoint path (ours or upstream)", read_only=True),
    ParameterSpec(
        "allow_untrained_weights",
        bool,
        "Run an untrained model when no weights are given (outputs are meaningless)",
        read_only=True,
    ),
    ParameterSpec(
        "backend", str, "Inference backend", read_only=True, choices=("torch", "onnxruntime")
    ),
    ParameterSpec("device", str, "Device", read_only=True, choices=("auto", "cpu", "cuda")),
    ParameterSpec(
        "precision",
        str,
        "Numeric precision (auto: fp16 on a GPU, fp32 on the CPU)",
        read_only=True,
        choices=("auto", "fp32", "fp16"),
    ),
    ParameterSpec(
        "num_threads",
        int,
        "CPU threads for inference, 0 = every core (the libraries' default): torch's thread "
        "pool, which is process-wide (every torch operation in the node's process; the "
        "onnxruntime backend pre- and post-processes in torch), and ONNX Runtime's intra-op "
        "threads; bounds the node's share of a CPU shared with other nodes",
        read_only=True,
        minimum=0,
        maximum=1024,
    ),
    ParameterSpec(
        "input_size",
        tuple,
        "Network input [height, width] or [side]; multiples of 128",
        read_only=True,
        minimum=128,
        maximum=4096,
    ),
    ParameterSpec("onnx_path", str, "onnxruntime backend: exported ONNX model", read_only=True),
    ParameterSpec(
        "engine_cache_dir", str, "onnxruntime: export and TensorRT engine cache", read_only=True
    ),
    ParameterSpec("conf_threshold", float, "Minimum score obj x cls", minimum=0.0, maximum=1.0),
    ParameterSpec(
        "nms_threshold", float, "IoU above which NMS suppresses", minimum=0.0, maximum=1.0
    ),
    ParameterSpec(
        "max_detections",
        int,
        "Most detections kept per image after NMS and the classes filter, the highest scores "
        "(the tracker's low-score boxes included); bounds the tracker's and the messages' work",
        minimum=1,
        maximum=100_000,
    ),
    ParameterSpec("classes", list, "Class names to publish; ['all'] publishes every class"),
    ParameterSpec(
        "class_id_as_index", bool, "Publish the class index instead of the name as class_id"
    ),
    ParameterSpec(
        "max_batch_size",
        int,
        "Most frames per inference batch",
        read_only=True,
        minimum=1,
        maximum=64,
    ),
    ParameterSpec(
        "max_batch_wait_ms",
        float,
        "Longest wait for other cameras once a frame is queued; -1 = auto (1 ms on a GPU, "
        "20 ms on the CPU)",
        read_only=True,
        minimum=-1.0,
        maximum=1000.0,
    ),
    ParameterSpec(
        "torch_compile",
        str,
        "torch backend: run the model through torch.compile in this mode ('off', or a mode; "
        "start-up compiles every batch size first, minutes on a GPU machine)",
        read_only=True,
        choices=("off", *COMPILE_MODES),
    ),
    ParameterSpec(
        "batch_arrival_forecast",
        bool,
        "Wait only for cameras whose next frame is due before a batch's deadline, as learned "
        "from each camera's frame rhythm; false: wait for every active camera up to "
        "max_batch_wait_ms",
        read_only=True,
    ),
    ParameterSpec(
        "prepare_frames_ahead",
        bool,
        "Upload and letterbox each frame while its batch waits for other cameras, so only the "
        "last frame's pre-processing delays the batch (torch backend)",
        read_only=True,
    ),
    ParameterSpec(
        "decode_threads",
        int,
        "Threads decoding CompressedImage frames (JPEG/PNG) off the executor thread, one "
        "camera's frames in order, the newest waiting one kept; -1 = auto (one per compressed "
        "camera, at most the CPU count), 0 = decode in the subscription callback",
        read_only=True,
        minimum=-1,
        maximum=64,
    ),
    ParameterSpec(
        "camera_receivers",
        str,
        "Where raw Image cameras are taken from DDS: 'processes' = a receiver process per "
        "camera handing frames over in shared memory (cameras triggered together are taken at "
        "once, not one after another under the GIL), 'executor' = the node's subscription "
        "callbacks, 'auto' = processes on a GPU with 2+ raw cameras and a core for each beside "
        "two for the node",
        read_only=True,
        choices=("auto", "executor", "processes"),
    ),
    ParameterSpec(
        "gil_switch_interval_ms",
        float,
        "detector_node process: how long a thread may hold Python's GIL while another waits "
        "for it (sys.setswitchinterval); 0 keeps Python's 5 ms. Shorter lets a frame's "
        "callback in sooner while the inference thread runs Python",
        read_only=True,
        minimum=0.0,
        maximum=100.0,
    ),
    ParameterSpec(
        "max_image_pixels",
        int,
        "Frames with more pixels are rejected as bad input",
        minimum=1,
        maximum=1 << 28,
    ),
    ParameterSpec("publish_dehazed", bool, "Publish <ns>/dehazed/image_raw"),
    ParameterSpec("publish_raw_detections", bool, "Publish <ns>/detections_raw (unsmoothed)"),
    ParameterSpec("publish_label_info", bool, "Publish a latched <ns>/label_info", read_only=True),
    ParameterSpec(
        "diagnostics_period_s",
        float,
        "Period of /diagnostics",
        read_only=True,
        minimum=0.05,
        maximum=60.0,
    ),
    ParameterSpec(
        "input_reliability",
        str,
        "Camera subscription reliability",
        read_only=True,
        choices=("best_effort", "reliable"),
    ),
    ParameterSpec(
        "input_depth", int, "Camera subscription depth", read_only=True, minimum=1, maximum=100
    ),
    ParameterSpec(
        "output_reliability",
        str,
        "Output publisher reliability",
        read_only=True,
        choices=("best_effort", "reliable"),
    ),
    ParameterSpec(
        "output_depth", int, "Output publisher depth", read_only=True, minimum=1, maximum=1000
    ),
    ParameterSpec(
        "autostart", bool, "Configure and activate the lifecycle node at start", read_only=True
    ),
    ParameterSpec("tracking.enabled", bool, "Smooth boxes over time with the tracker"),
    ParameterSpec(
        "tracking.high_score_threshold",
        float,
        "Scores at or above start tracks",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "tracking.low_score_threshold",
        float,
        "Scores at or above only extend tracks",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "tracking.match_iou", float, "IoU to match high-score boxes", minimum=0.0, maximum=1.0
    ),
    ParameterSpec(
        "tracking.low_score_match_iou",
        float,
        "IoU to match low-score boxes",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "tracking.min_hits",
        int,
        "Matched frames before a track is published",
        minimum=1,
        maximum=100,
    ),
    ParameterSpec(
        "tracking.max_misses", int, "Missed frames a track survives", minimum=0, maximum=1000
    ),
    ParameterSpec(
        "tracking.process_noise", float, "Kalman process noise", minimum=1e-6, maximum=1e3
    ),
    ParameterSpec(
        "tracking.measurement_noise", float, "Kalman measurement noise", minimum=1e-6, maximum=1e3
    ),
    ParameterSpec(
        "tracking.max_gap_s", float, "Stamp gap that resets tracks", minimum=1e-3, maximum=3600.0
    ),
)
SPECS_BY_NAME: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETER_SPECS}


@dataclass(frozen=True)
class NodeSettings:
    """Validated parameter values of the detector node."""

    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) from the parameter's [side] or [height, width]."""
        size = self.values["input_size"]
        return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])

    @property
    def class_filter(self) -> frozenset[str] | None:
        """Class names to keep, or None for every class."""
        names = {name for name in self.values["classes"] if name}
        return None if not names or ALL_CLASSES in names else frozenset(names)

    @property
    def compile_mode(self) -> str | None:
        """The `torch.compile` mode, or None when `torch_compile` is 'off'."""
        mode = self.values["torch_compile"]
        return None if mode == "off" else mode

    def detector_threshold(self) -> float:
        """Score the detector keeps: `conf_threshold`, or lower for the tracker's low stage."""
        tracker = self.tracker_config() if self.values["tracking.enabled"] else None
        return detector_threshold(self.values["conf_threshold"], tracker)

    def tracker_config(self) -> TrackerConfig:
        """The `tracking.*` parameters as a TrackerConfig, starting tracks only from boxes that
        reach `conf_threshold` (see tracking/score_gate.py)."""
        configured = TrackerConfig.from_dict(
            {
                name.removeprefix(TRACKING_PREFIX): value
                for name, value in self.values.items()
                if name.startswith(TRACKING_PREFIX) and name != "tracking.enabled"
            }
        )
        return tracker_config_behind(self.values["conf_threshold"], configured)


def named_classes(classes: Sequence[str]) -> frozenset[str] | None:
    """The class names ``classes`` names besides 'all' and empty entries (None: none), the ones
    to check against the model: a typo beside 'all' must not pass unseen."""
    return frozenset(classes) - {"", ALL_CLASSES} or None


def flatten_parameters(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mapping -> ROS-style dotted names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_parameters(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_default_parameters(path: Path, node_fqn: str = DEFAULT_NODE_FQN) -> dict[str, Any]:
    """Read the node's defaults from a params YAML, as rcl would give them to ``node_fqn``.

    Every section matching the node applies, merged as rcl merges them (ros/params_file.py), and
    scalars are typed as rcl types them, so the declared defaults equal what the same file given
    as ``--params-file`` sets.
    """
    try:
        sections = read_sections([path])
    except ParamsFileError as error:
        raise SettingsError(f"cannot read parameter defaults: {error}") from error
    if not sections.matching_sections(node_fqn):
        raise SettingsError(f"{path}: no 'ros__parameters' section for {node_fqn}")
    defaults = sections.for_node(node_fqn)
    missing = sorted(set(SPECS_BY_NAME) - set(defaults))
    unknown = sorted(set(defaults) - set(SPECS_BY_NAME))
    if missing or unknown:
        raise SettingsError(
            f"{path}: parameters missing {missing} / unknown {unknown}; "
            "every declared parameter needs exactly one default there"
        )
    return defaults


def default_config_path() -> Path:
    """config/detect.yaml of the source tree, else of the installed package share."""
    source_tree = Path(__file__).resolve().parents[2] / "config" / CONFIG_FILE_NAME
    if source_tree.is_file():
        return source_tree
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("togethernet_ros")) / "config" / CONFIG_FILE_NAME


def check_value(spec: ParameterSpec, value: Any) -> Any:
    """Validate one value against its spec; returns it normalised (tuple for int lists)."""
    where = f"parameter '{spec.name}'"
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where} must be true or false, got {value!r}")
        return value
    if spec.kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{where} must be a list of strings, got {value!r}")
        return tuple(value)
    if spec.kind is tuple:
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)  # `input_size: 640` means a square input
        if (
            not isinstance(value, (list, tuple))
            or len(value) not in (1, 2)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise SettingsError(
                f"{where} must be [side] or [height, width] integers, got {value!r}"
            )
        for side in value:
            _check_range(spec, side, where)
            if side % 128:
                raise SettingsError(
                    f"{where}: {side} is not a multiple of 128 (the self-calibration blocks "
                    f"pool stride-32 maps by 4); try {max(128, round(side / 128) * 128)}"
                )
        return tuple(value)
    if spec.kind is str:
        if value is False and "off" in spec.choices:
            # `-p torch_compile:=off` arrives as false: a bare off is YAML 1.1 for false.
            value = "off"
        if not isinstance(value, str):
            raise SettingsError(f"{where} must be a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise SettingsError(f"{where} must be one of {list(spec.choices)}, got {value!r}")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where} must be an integer, got {value!r}")
        _check_range(spec, value, where)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{where} must be a finite number, got {value!r}")
    _check_range(spec, value, where)
    return float(value)


def _check_range(spec: ParameterSpec, value: float, where: str) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise SettingsError(f"{where} must be >= {spec.minimum}, got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise SettingsError(f"{where} must be <= {spec.maximum}, got {value!r}")


def validate_settings(values: Mapping[str, Any]) -> NodeSettings:
    """Check every parameter and the rules that span several; raise SettingsError naming them."""
    unknown = sorted(set(values) - set(SPECS_BY_NAME))
    if unknown:
        raise SettingsError(f"unknown parameter(s) {unknown}")
    missing = sorted(set(SPECS_BY_NAME) - set(values))
    if missing:
        raise SettingsError(f"missing parameter(s) {missing}")
    checked = {name: check_value(SPECS_BY_NAME[name], value) for name, value in values.items()}
    topics = [topic for topic in checked["image_topics"] if topic]
    if not topics:
        raise SettingsError("parameter 'image_topics' must name at least one camera topic")
    if len(set(topics)) != len(topics):
        raise SettingsError(f"parameter 'image_topics' lists a topic twice: {topics}")
    try:
        check_distinct_outputs(topics)
    except ValueError as error:
        raise SettingsError(f"parameter 'image_topics': {error}") from None
    checked["image_topics"] = tuple(topics)
    # An exported ONNX file is a model of its own: onnxruntime runs it without the checkpoint.
    runs_an_export = checked["backend"] == "onnxruntime" and bool(checked["onnx_path"])
    if not checked["weights"] and not checked["allow_untrained_weights"] and not runs_an_export:
        raise SettingsError(
            "parameter 'weights' is empty: give a TogetherNet checkpoint (-p weights:=/path/to.pt), "
            "an exported model (backend:=onnxruntime with onnx_path), or set "
            "allow_untrained_weights:=true for plumbing tests (outputs are meaningless)"
        )
    if -1.0 < checked["max_batch_wait_ms"] < 0.0:
        raise SettingsError(
            "parameter 'max_batch_wait_ms' must be -1 (auto) or >= 0, "
            f"got {checked['max_batch_wait_ms']!r}"
        )
    if checked["torch_compile"] != "off" and checked["backend"] != "torch":
        raise SettingsError(
            f"parameter 'torch_compile' ({checked['torch_compile']!r}) needs backend 'torch', "
            f"not {checked['backend']!r}"
        )
    if checked["precision"] == "fp16" and checked["device"] == "cpu":
        raise SettingsError("parameter 'precision' fp16 needs device 'cuda' or 'auto' with a GPU")
    if checked["tracking.low_score_threshold"] > checked["tracking.high_score_threshold"]:
        raise SettingsError(
            "parameter 'tracking.low_score_threshold' "
            f"({checked['tracking.low_score_threshold']}) must not exceed "
            f"'tracking.high_score_threshold' ({checked['tracking.high_score_threshold']})"
        )
    settings = NodeSettings(values=checked)
    try:
        settings.tracker_config()
    except ValueError as error:
        # The tracker names its own fields; the user set them as tracking.* parameters.
        message = re.sub(r"TrackerConfig\.(\w+)", rf"parameter '{TRACKING_PREFIX}\1'", str(error))
        raise SettingsError(message) from error
    return settings


def command_line_values(argv: Sequence[str]) -> dict[str, Any]:
    """The ``-p name:=value`` values in the ``--ros-args`` sections of ``argv``, read as rcl does.

    Typed by ros/params_file.py (``1e-1`` is a number, ``maybe`` text), so they compare with
    what the node received. Node-qualified rules (``node:name:=value``) and values rcl would
    refuse are left out.
    """
    values: dict[str, Any] = {}
    for flag, rule in ros_args_options(argv):
        if flag not in PARAM_FLAGS:
            continue
        name, separator, text = rule.partition(":=")
        if not separator or ":" in name:
            continue
        try:
            values[name] = ros_value(text)
        except ParamsFileError:
            continue
    return values


def values_not_received(given: Mapping[str, Any], received: Mapping[str, Any]) -> list[str]:
    """Names of ``given`` command-line values that differ from what the node ``received``.

    rcl keeps a params file's value when ``-p`` gives the same name a value of another kind
    (``maybe`` or ``0`` for a boolean, text for a number), and the node then runs with the
    file's value without a word.
    """
    return [
        name
        for name, value in given.items()
        if name in received and not _same_value(value, received[name])
    ]


def _same_value(given: Any, received: Any) -> bool:
    if isinstance(given, bool) or isinstance(received, bool):
        return isinstance(given, bool) and isinstance(received, bool) and given == received
    if isinstance(given, (list, tuple)) and isinstance(received, (list, tuple)):
        return len(given) == len(received) and all(
            _same_value(a, b) for a, b in zip(given, received, strict=True)
        )
    if isinstance(given, (int, float)) and isinstance(received, (int, float)):
        return float(given) == float(received)
    return given == received
