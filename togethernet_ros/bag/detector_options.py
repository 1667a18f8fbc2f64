"""Command-line options that build a Detector the same way the node does, for the bag commands.

Defaults come from the node's parameters file: ``--params-file``, else the node's own
config/detect.yaml (the YAML is the single source of defaults, so `bag run` without options
detects as the node does); explicit command-line values win. Read from the file: the detector
keys below (the ONNX export `onnx_path` and `engine_cache_dir` included), `classes` and
`tracking.*` (with `tracking.enabled: false`, `detections` holds the unsmoothed detections
without track ids, as the node publishes them). The node's publishing
and QoS options are not read (`bag run` has its own output flags), nor `class_id_as_index`,
`torch_compile`, `prepare_frames_ahead` or `batch_arrival_forecast` (`bag run` batches with the
forecast on, as the node's default).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from togethernet_ros.ros.params_file import ParamsFileError, read_sections

NODE_NAME = "detector"
TRACKING_PREFIX = "tracking."
# The node's fully qualified name as `bag run` stands in for it: root namespace, not remapped.
NODE_FQN = f"/{NODE_NAME}"
DETECTOR_KEYS = (
    "weights",
    "allow_untrained_weights",
    "backend",
    "device",
    "precision",
    "input_size",
    "conf_threshold",
    "nms_threshold",
    "max_detections",
    "max_batch_size",
    "max_batch_wait_ms",
    "num_threads",
    "onnx_path",
    "engine_cache_dir",
    "classes",
)
# Only where config/detect.yaml cannot be found (an install without its share folder): the
# node's defaults, except the weights, whose relative path would name nothing there.
FALLBACK_DEFAULTS: dict[str, Any] = {
    "weights": "",
    "allow_untrained_weights": False,
    "backend": "torch",
    "device": "auto",  # as the node: a GPU when torch sees one
    "precision": "auto",
    "input_size": [384, 640],
    "conf_threshold": 0.3,
    "nms_threshold": 0.45,
    "max_detections": 300,
    "max_batch_size": 4,
    "max_batch_wait_ms": -1.0,  # auto: see pipeline/batch_wait.py
    "num_threads": 0,  # torch's and ONNX Runtime's default: every core
    "onnx_path": "",
    "engine_cache_dir": "",
    "classes": ["all"],
}


def read_node_parameters(path: Path) -> dict[str, Any]:
    """The parameters a detector node named ``/detector`` gets from the params file ``path``.

    Read by ros/params_file.py, as rcl reads the file given to the node with ``--params-file``:
    every section matching ``/detector`` applies (``detector``, ``/**``, ``/**: {detector:
    ...}``; not ``robot: {detector: ...}``, which is ``/robot/detector``), merged in the order
    the sections appear, and ``1e-3`` is a number. A ParamsFileError (a ValueError) names the
    file and the problem, also when no section of the file applies to the node (the node would
    then get none of its values).
    """
    sections = read_sections([path])
    if not sections.matching_sections(NODE_FQN):
        others = (
            f"; its sections ({', '.join(sections.sections)}) apply to other nodes or namespaces"
            if sections.sections
            else ""
        )
        raise ParamsFileError(
            f"params file {path} has no 'ros__parameters:' section for the node {NODE_FQN} "
            f"(key one '{NODE_NAME}:' or '/**:'{others})"
        )
    return sections.for_node(NODE_FQN)


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Detector and batching options (None = take from --params-file or the built-in default)."""
    group = parser.add_argument_group(
        "detector (defaults: --params-file, else the node's config/detect.yaml)"
    )
    group.add_argument(
        "--params-file",
        type=Path,
        default=None,
        help="node parameters YAML (default: the node's config/detect.yaml)",
    )
    group.add_argument("--weights", default=None, help="checkpoint path ('' = none)")
    group.add_argument(
        "--allow-untrained-weights",
        action="store_const",
        const=True,
        default=None,
        help="run with seeded untrained weights when no checkpoint is given (outputs meaningless)",
    )
    group.add_argument("--backend", choices=("torch", "onnxruntime"), default=None)
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    group.add_argument("--precision", choices=("auto", "fp32", "fp16"), default=None)
    group.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=None,
        metavar="PX",
        help="SIDE or HEIGHT WIDTH, multiples of 128 (node parameter input_size)",
    )
    group.add_argument(
        "--conf-threshold",
        type=float,
        default=None,
        help="score a detection needs to be written, in [0, 1] (node parameter conf_threshold)",
    )
    group.add_argument(
        "--nms-threshold",
        type=float,
        default=None,
        help="NMS IoU threshold, in [0, 1] (node parameter nms_threshold)",
    )
    group.add_argument(
        "--max-detections",
        type=int,
        default=None,
        metavar="N",
        help="most detections per image, the highest scores (node parameter max_detections)",
    )
    group.add_argument("--max-batch-size", type=int, default=None)
    group.add_argument(
        "--max-batch-wait-ms", type=float, default=None, help="-1 = auto (1 ms GPU, 20 ms CPU)"
    )
    group.add_argument(
        "--num-threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for inference, torch's and ONNX Runtime's; 0 = every core (node "
        "parameter num_threads)",
    )


def resolve_detector_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Merge built-in defaults < the node's own YAML < --params-file < command line.

    Layered as the node layers them: a params file that sets only some keys (a threshold)
    keeps the node's other defaults (its weights, its tracking) instead of the built-in ones.
    A name whose last params-file value is none (``input_size: []``) and that the command line
    does not set is a ValueError naming the parameter and the file, as the node refuses it.
    """
    settings = dict(FALLBACK_DEFAULTS)
    tracker: dict[str, Any] = {}
    given_by: dict[str, Path] = {}  # the params file each name's value came from
    for params_file in (_node_config_file(), getattr(args, "params_file", None)):
        if params_file is None:
            continue
        for name, value in read_node_parameters(params_file).items():
            if name in DETECTOR_KEYS:
                settings[name] = value
            elif name.startswith(TRACKING_PREFIX):
                tracker[name.removeprefix(TRACKING_PREFIX)] = value
            else:
                continue
            given_by[name] = params_file
    for key in DETECTOR_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
            given_by.pop(key, None)
    for name, params_file in given_by.items():
        value = (
            settings[name] if name in DETECTOR_KEYS else tracker[name.removeprefix(TRACKING_PREFIX)]
        )
        if value is None:
            raise ValueError(_no_value_message(name, params_file))
    enabled = True  # the node's default
    if "enabled" in tracker:
        enabled = _tracking_enabled(tracker.pop("enabled"), given_by["tracking.enabled"])
    if tracker:
        settings["tracker"] = tracker
    settings["tracking_enabled"] = enabled
    size = _checked_input_size(settings["input_size"], given_by.get("input_size"))
    settings["input_size"] = (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
    _check_as_the_node(settings, given_by)
    return settings


def _check_as_the_node(settings: dict[str, Any], given_by: dict[str, Path]) -> None:
    """Each detector setting through the node's own check: `weights: 5` or `max_batch_size:
    x` in a params file is refused naming the parameter and the file, not by a TypeError or
    an int() message later."""
    from togethernet_ros.ros.node_settings import SPECS_BY_NAME, check_value  # no rclpy

    for name in DETECTOR_KEYS:
        spec = SPECS_BY_NAME.get(name)
        if spec is None or name == "input_size":  # checked above, as [side] or [h, w]
            continue
        try:
            settings[name] = check_value(spec, settings[name])
        except ValueError as error:
            where = f"params file {given_by[name]}: " if name in given_by else ""
            raise ValueError(f"{where}{error}") from None


def _checked_input_size(value: Any, params_file: Path | None) -> list[int]:
    """``input_size`` as [side] or [height, width]; ValueError naming where it came from."""
    sides = [value] if isinstance(value, int) else value
    if (
        isinstance(sides, (list, tuple))
        and len(sides) in (1, 2)
        and all(isinstance(side, int) and not isinstance(side, bool) for side in sides)
    ):
        return list(sides)
    # As the node refuses it (ros/node_settings.py), not a TypeError or a silently cut list.
    where = f"params file {params_file}: " if params_file is not None else "--input-size: "
    raise ValueError(
        f"{where}parameter 'input_size' must be [side] or [height, width] integers, got {value!r}"
    )


def _node_config_file() -> Path | None:
    """The node's config/detect.yaml (source tree or installed share), None where absent."""
    from togethernet_ros.ros.node_settings import default_config_path  # plain Python, no rclpy

    try:
        path = default_config_path()
    except (ImportError, LookupError, OSError):  # no ament index, or the package is not in it
        return None
    return path if path.is_file() else None


def _no_value_message(name: str, params_file: Path) -> str:
    """Why a parameter the file names has no value (``input_size: []``), and what to do."""
    # rcl gives an empty list no value and no type; the node then holds no value either (not
    # its default) and refuses to configure, so the bag commands refuse it by name as well.
    return (
        f"params file {params_file}: parameter '{name}' has no value (rcl reads an empty "
        "list [] as none, and the node refuses to start without one); give it a value, or "
        "leave it out to keep the node's default"
    )


def _tracking_enabled(value: Any, params_file: Path) -> bool:
    """`tracking.enabled` as the node takes it: a bool, else a ValueError naming the file."""
    # The node declares it a bool parameter; a quoted 'false' would otherwise count as true.
    if not isinstance(value, bool):
        raise ValueError(
            f"params file {params_file}: tracking.enabled must be true or false, got {value!r}"
        )
    return value


def create_detector_from_settings(settings: dict[str, Any]) -> Any:
    """Build the Detector (imports the inference package only now: it pulls in torch).

    As the node: `num_threads` above 0 bounds torch's CPU threads (process-wide) and ONNX
    Runtime's; a value the node refuses is a ValueError with the node's message.
    """
    from togethernet_ros.inference import create_detector
    from togethernet_ros.inference.cpu_threads import limit_cpu_threads
    from togethernet_ros.ros.node_settings import SPECS_BY_NAME, check_value  # no rclpy

    num_threads = limit_cpu_threads(
        check_value(SPECS_BY_NAME["num_threads"], settings["num_threads"])
    )
    return create_detector(
        settings["weights"] or None,
        backend=settings["backend"],
        device=settings["device"],
        precision=settings["precision"],
        input_size=settings["input_size"],
        conf_threshold=float(settings["conf_threshold"]),
        nms_threshold=float(settings["nms_threshold"]),
        # As the node: capped after the class filter (OfflinePipeline), not here.
        max_detections=None,
        color_order="bgr",
        allow_untrained=bool(settings["allow_untrained_weights"]),
        # As the node: an existing `onnx_path` is the model (weights '' allowed), else the
        # weights are exported there or into the cache.
        onnx_path=settings["onnx_path"] or None,
        cache_dir=settings["engine_cache_dir"] or None,
        # Sizes GPU buffers, CUDA graphs and TensorRT profiles for the batches that will come.
        max_batch_size=int(settings["max_batch_size"]),
        num_threads=num_threads,
    )


def checked_max_detections(value: Any) -> int:
    """`max_detections` as the node takes it: an integer >= 1 (a ROS parameter has no None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"parameter 'max_detections' must be an integer >= 1, got {value!r}")
    return value


def class_filter(settings: dict[str, Any]) -> frozenset[str] | None:
    """The node's `classes` parameter: the class names to write, None for every class."""
    from togethernet_ros.ros.node_settings import ALL_CLASSES  # plain Python, no rclpy

    classes = settings["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"parameter 'classes' must be a list of strings, got {classes!r}")
    names = {name for name in classes if name}
    return None if not names or ALL_CLASSES in names else frozenset(names)
