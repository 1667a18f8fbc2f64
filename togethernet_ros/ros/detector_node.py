"""The TogetherNet detector node: camera topics in, Detection2DArray and dehazed images out.

A lifecycle node and a thin adapter: batching (pipeline/), inference (inference/), smoothing
(tracking/) and the message layouts (bag/) are ROS-free modules. Configure loads the model,
activate subscribes and starts the single inference thread, deactivate stops both, cleanup frees
the model (and GPU memory). With ``autostart`` (the default) it configures and activates itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterValueException, InvalidTopicNameException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.expand_topic_name import expand_topic_name
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
from rclpy.validate_full_topic_name import validate_full_topic_name
from rclpy.validate_topic_name import validate_topic_name
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import (
    Detection2DArray,
    LabelInfo,
    VisionClass,
)

from togethernet_ros.bag.detection_cdr import encode_detection2d_array
from togethernet_ros.bag.detection_messages import class_labels
from togethernet_ros.bag.image_codec import (
    ImageDecodeError,
    SensorBitDepth,
    decode_compressed_message,
    decode_image_message,
)
from togethernet_ros.bag.output_topics import OutputTopics, output_topics
from togethernet_ros.inference.gpu_memory import release_cached_gpu_memory
from togethernet_ros.pipeline.batch_wait import AUTO_BATCH_WAIT_MS, resolve_batch_wait_ms
from togethernet_ros.pipeline.decode_pool import DecodePool, resolve_decode_threads
from togethernet_ros.pipeline.frame_batcher import FrameBatcher
from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap
from togethernet_ros.pipeline.inference_worker import BatchInfo, InferenceWorker
from togethernet_ros.pipeline.latency_stats import PERCENTILE_METHOD
from togethernet_ros.pipeline.usable_cpus import usable_cpus
from togethernet_ros.ros.camera_receivers import (
    CameraReceiver,
    describe_receiver,
    start_receivers,
    stop_receivers,
    use_receiver_processes,
)
from togethernet_ros.ros.camera_stats import CameraStats
from togethernet_ros.ros.diagnostics_latency import latency_values
from togethernet_ros.ros.log_forwarding import forward_library_logs
from togethernet_ros.ros.node_settings import (
    DEFAULT_NODE_FQN,
    PARAMETER_SPECS,
    SPECS_BY_NAME,
    NodeSettings,
    ParameterSpec,
    SettingsError,
    check_value,
    command_line_values,
    default_config_path,
    load_default_parameters,
    named_classes,
    validate_settings,
    values_not_received,
)
from togethernet_ros.ros.params_file import (
    ParamsFileError,
    enclave_name,
    params_file_paths,
    read_sections,
)
from togethernet_ros.ros.qos_profiles import (
    overriding_options,
    publisher_without_default_event_handlers,
    qos_profile,
)
from togethernet_ros.ros.qos_settings import (
    PUBLISHER,
    SUBSCRIPTION,
    QosEntity,
    detector_entities,
    unmatched_overrides,
)
from togethernet_ros.ros.receive_timing import split_receive_delay
from togethernet_ros.ros.serialized_images import SerializedImageReader
from togethernet_ros.ros.warning_throttle import WarningThrottle
from togethernet_ros.tracking.frame_timeline import FrameTimeline
from togethernet_ros.tracking.reset_counts import (
    EVERY_FRAME_RESETS,
    TrackerResetCounts,
    every_frame_reset_warning,
)
from togethernet_ros.tracking.score_gate import scoring_at_least
from togethernet_ros.tracking.tracked_detections import TrackedDetections
from togethernet_ros.tracking.tracker import Tracker
from togethernet_ros.vision.class_filter import keep_classes, unknown_classes
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.draw import draw_detections
from togethernet_ros.vision.encoded_image_size import encoded_image_size

NODE_NAME = "detector"
WARN_THROTTLE_S = 5.0
# A camera without stamps stays so; one reminder a minute per camera is enough.
UNSTAMPED_WARN_PERIOD_S = 60.0


@dataclass
class CameraFrame:
    """One received frame on its way through the batcher to the publishers."""

    topic: str
    image: np.ndarray  # H x W x 3 uint8, BGR
    header: Any  # the source message's std_msgs/Header (rosbags' or rclpy's type)
    received_at: float  # time.monotonic() when the subscription callback got it


@dataclass
class CameraOutputs:
    """Publishers, tracker and statistics of one camera."""

    # The camera topic as subscribed: the parameter's name expanded in the node's namespace and
    # remapped, which is what users see in `ros2 topic list` and what names it in diagnostics.
    input_topic: str
    topics: OutputTopics
    detections: Any
    detections_raw: Any
    dehazed: Any
    debug_image: Any
    label_info: Any | None
    tracker: Tracker
    stats: CameraStats
    tracker_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # The tracker's time of each frame, and when its tracks stop applying (inference thread).
    timeline: FrameTimeline = dataclasses.field(default_factory=FrameTimeline)
    # Why and how often its tracks restarted (diagnostics, and the every-frame warning).
    resets: TrackerResetCounts = dataclasses.field(default_factory=TrackerResetCounts)
    # The scale of its 16-bit frames, kept so their brightness does not flicker; decoding
    # (callback thread) restarts it when the frame_id or size changes (SensorBitDepth.follow).
    bit_depth: SensorBitDepth = dataclasses.field(default_factory=SensorBitDepth)


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    description = spec.description
    if spec.choices:
        description += f" (one of: {', '.join(spec.choices)})"
    # Dynamic typing: rclpy would otherwise reject `-p max_batch_wait_ms:=5` (an integer for
    # a double), `-p input_size:=640` or `publish_dehazed: yes` with a traceback before the
    # node runs; check_value() accepts what is meant and names the parameter in what it refuses.
    descriptor = ParameterDescriptor(
        description=description, read_only=spec.read_only, dynamic_typing=True
    )
    if spec.kind is int and spec.minimum is not None and spec.maximum is not None:
        descriptor.integer_range = [
            IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)
        ]
    if spec.kind is float and spec.minimum is not None and spec.maximum is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.minimum), to_value=float(spec.maximum))
        ]
    return descriptor


def _value_kind(value: Any) -> str:
    """What rcl tells apart when a -p value meets a params file's value of the same name."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    return "list" if isinstance(value, (list, tuple)) else "text"


def _rclpy_passes_message_info() -> bool:
    """Whether this rclpy gives subscription callbacks the message info (3.4+, not Humble)."""
    return hasattr(Subscription, "CallbackType")


def _publication_sequence_number(message_info: dict[str, int | None] | None) -> int | None:
    return None if message_info is None else message_info.get("publication_sequence_number")


def _stamp_seconds(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class DetectorNode(LifecycleNode):
    """Lifecycle node running TogetherNet on one or more camera topics."""

    def __init__(
        self, node_name: str = NODE_NAME, *, enclave: str | None = None, **kwargs: Any
    ) -> None:
        """``enclave``: the SROS2 enclave the process was started in (``--enclave``), which
        its camera receiver processes join too; other keywords go to the lifecycle node."""
        super().__init__(node_name, **kwargs)
        self._enclave = enclave
        defaults = load_default_parameters(default_config_path())
        for spec in PARAMETER_SPECS:
            value = defaults[spec.name]
            if spec.kind is float and isinstance(value, int):
                value = float(value)
            try:
                self.declare_parameter(spec.name, value, _descriptor(spec))
            except InvalidParameterValueException as error:
                # rclpy checks a -p or params-file value against the declared range here,
                # before any of the node's own checks could name it.
                raise SettingsError(
                    f"parameter {spec.name!r} must be from {spec.minimum} to {spec.maximum}: "
                    f"{error}"
                ) from error
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._warn_about_ignored_overrides()
        self._settings: NodeSettings | None = None
        self._detector: Any = None
        self._class_names: tuple[str, ...] = ()
        self._cameras: dict[str, CameraOutputs] = {}
        self._camera_subscriptions: list[Any] = []
        # Raw cameras received in their own processes (camera_receivers), by parameter topic,
        # and those whose receiver exited with no subscription in the node to replace it.
        self._receivers: dict[str, CameraReceiver] = {}
        self._unreceived: set[str] = set()
        self._batcher: FrameBatcher | None = None
        self._image_reader = SerializedImageReader()
        self._worker: InferenceWorker | None = None
        self._decode_pool: DecodePool | None = None
        self._diagnostics_timer: Any = None
        self._diagnostics_pub: Any = None
        # Base QoS of every publisher and subscription by (resolved topic, kind), from configure.
        self._qos: dict[tuple[str, str], QosEntity] = {}
        # Transitions, parameter changes, the diagnostics timer and destroy_node may each run on
        # a different thread (trigger_* from the application, a multi-threaded executor, the
        # parameter service): each holds this while it reads or replaces the settings, model,
        # publishers, batcher or worker. Re-entrant: shutdown_cleanly and on_error nest the steps.
        # The inference thread never takes it, because _stop_processing joins that thread with
        # it held.
        self._runtime_lock = threading.RLock()
        self._warnings = WarningThrottle(WARN_THROTTLE_S)
        self._unstamped_warnings = WarningThrottle(UNSTAMPED_WARN_PERIOD_S)

    # ---------------------------------------------------------------- parameters

    def _warn_about_ignored_overrides(self) -> None:
        """Name the parameters given to this node (-p, a params file) that it does not have.

        rclpy drops a value for an undeclared name without a word, so `-p conf_treshold:=0.6`
        or a misspelt key in a params file left the default in force unnoticed. A warning, not
        a refusal: a `/**` params file shared by a robot's nodes rightly holds others' names.
        """
        given = self._given_parameters()
        # The standard QoS overrides are declared when their publisher or subscription is
        # created (configure, activate): judged against the entities the node will create.
        qos_names = [name for name in given if name.startswith("qos_overrides.")]
        try:
            qos_unmatched = unmatched_overrides(
                qos_names, self._qos_entities(self._read_parameters())
            )
        except (RuntimeError, ValueError, TypeError, KeyError):  # topics configure will refuse
            qos_unmatched = {}
        ignored = sorted(
            name
            for name in given
            if not self.has_parameter(name)
            and (not name.startswith("qos_overrides.") or name in qos_unmatched)
        )
        if not ignored:
            return
        hints = []
        for name in ignored:
            if name in qos_unmatched:
                hints.append(f"{name} ({qos_unmatched[name]})")
                continue
            close = difflib.get_close_matches(name, SPECS_BY_NAME, n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        self.get_logger().warning(
            f"{len(ignored)} parameter(s) given for this node are not its own and are ignored: "
            f"{', '.join(hints)}"
        )

    def _given_parameters(self) -> dict[str, Any]:
        """What -p and the params files gave this node (name -> value)."""
        # rclpy keeps them here (no public accessor).
        given = getattr(self, "_parameter_overrides", {})
        return {name: parameter.value for name, parameter in given.items()}

    def _qos_entities(self, values: dict[str, Any]) -> list[QosEntity]:
        """The node's publishers and subscriptions (resolved topics) with their base QoS."""
        topics = [topic for topic in values["image_topics"] if topic]
        inputs = {topic: self.resolve_topic_name(topic) for topic in topics}
        return detector_entities(values, inputs, self.resolve_topic_name)

    def warn_about_params_files_for_other_names(self, argv: Sequence[str]) -> None:
        """Name the ``--params-file`` of ``argv`` none of whose sections applies to this node.

        A file keyed ``detector:`` configures ``/detector`` only: pushed into a namespace
        (``namespace:=front``) or renamed, the node ran on its defaults without a word.
        """
        fqn = self.get_fully_qualified_name()
        for path in params_file_paths(argv):
            try:
                sections = read_sections([path])
            except ParamsFileError as error:
                # rcl started with it, but reads some such files other than they mean (a
                # trailing `name: {}` is no value; a nested one files later keys wrongly).
                self.get_logger().warning(f"{error}; rcl read it, so check what the node got")
                continue
            if sections.sections and not sections.matching_sections(fqn):
                self.get_logger().warning(
                    f"params file {path} has no section for this node ({fqn}): its sections "
                    f"{list(sections.sections)} apply to other nodes, so none of its values are "
                    "used; "
                    f"key it '/**:' (any node) or '{fqn}:' (a plain 'detector:' is "
                    f"{DEFAULT_NODE_FQN}, in the root namespace)"
                )

    def warn_about_lost_command_line_values(self, argv: Sequence[str]) -> None:
        """Name the ``-p`` values of ``argv`` that did not reach this node (see below).

        rcl keeps a ``--params-file`` value when ``-p`` gives the same name a value of another
        kind, so `-p publish_dehazed:=maybe` ran with the file's true without a word. A warning,
        not a refusal: the comparison re-reads the command line, not what rcl parsed.
        """
        given = command_line_values(argv)
        received = self._read_parameters()
        for name in values_not_received(given, received):
            kinds = (_value_kind(given[name]), _value_kind(received[name]))
            if kinds[0] == kinds[1] or kinds == ("integer", "double"):  # an integer does arrive
                # Same kind, yet lost: rcl files -p under `/**`, and a section naming the node
                # placed after the file's `/**` section is merged later and wins.
                reason = (
                    "rcl files -p values under '/**', and a params-file section naming this "
                    "node that comes after the file's '/**' section wins over them (set the "
                    "value in that section)"
                )
            else:
                reason = (
                    "rcl keeps a params file's value when -p gives another kind (write "
                    "booleans as true/false, numbers as numbers)"
                )
            self.get_logger().warning(
                f"-p {name}:={given[name]!r} did not reach the node, which runs with "
                f"{received[name]!r} from the params file: {reason}"
            )

    def _read_parameters(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETER_SPECS}

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate run-time changes; apply thresholds, class filter and tracker settings."""
        # Others, such as use_sim_time, are rclpy's own: it checks them (and refuses undeclared
        # names) itself, so they need not wait for a configure that is loading the model.
        ours = [parameter for parameter in parameters if parameter.name in SPECS_BY_NAME]
        if not ours:
            return SetParametersResult(successful=True)
        # Locked from the first read of _settings: a change accepted from stale settings would
        # undo a concurrent change, or be overwritten by the configure that is loading the model.
        with self._runtime_lock:
            return self._apply_parameters(ours)

    def _apply_parameters(self, ours: list[Parameter]) -> SetParametersResult:
        if self._settings is None:
            # Not configured yet (autostart false, or a failed configure): no settings to check
            # the rules spanning several parameters against, but a value of the wrong type or
            # out of its choices is refused now, with its reason, rather than kept until
            # configure fails on it.
            try:
                for parameter in ours:
                    check_value(SPECS_BY_NAME[parameter.name], parameter.value)
            except SettingsError as error:
                return SetParametersResult(successful=False, reason=str(error))
            return SetParametersResult(successful=True)
        values = dict(self._settings.values)
        for parameter in ours:
            values[parameter.name] = parameter.value
        try:
            for parameter in ours:
                check_value(SPECS_BY_NAME[parameter.name], parameter.value)
            settings = validate_settings(values)
            _check_class_filter(settings, self._class_names)
        except SettingsError as error:
            return SetParametersResult(successful=False, reason=str(error))
        threshold_changed = settings["conf_threshold"] != self._settings["conf_threshold"]
        self._settings = settings
        if self._detector is not None:
            self._detector.conf_threshold = settings.detector_threshold()
            self._detector.nms_threshold = settings["nms_threshold"]
        tracker_config = settings.tracker_config()
        for camera in self._cameras.values():
            with camera.tracker_lock:
                camera.tracker.config = tracker_config
            if threshold_changed:
                # label_info is latched and carries the score threshold: keep it true.
                self._publish_label_info(camera)
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, load (and warm up) the model and create the publishers."""
        # Held while the model loads, so a parameter change waits and is then checked against
        # (and applied to) the new settings instead of being lost when configure sets them.
        with self._runtime_lock:
            try:
                return self._configure()
            except Exception as error:
                # rclpy turns it into a transition error without a word; on_error cleans up.
                if self.context.ok():
                    self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
                else:  # SIGINT/SIGTERM while the model loaded: a stop, not a failure
                    self.get_logger().info("stopped while configuring")
                raise

    def _configure(self) -> TransitionCallbackReturn:
        try:
            settings = validate_settings(self._read_parameters())
            input_topics = self._resolve_camera_topics(settings["image_topics"])
            # Bad QoS overrides fail here, named, before minutes of model loading.
            qos = self._check_qos_overrides(settings)
            self._detector = self._create_detector(settings)
            _check_class_filter(settings, tuple(self._detector.class_names))
        except (SettingsError, FileNotFoundError, ValueError, RuntimeError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            if self._detector is not None:
                self._detector.close()
            self._detector = None
            return TransitionCallbackReturn.FAILURE
        self._settings = settings
        self._class_names = tuple(self._detector.class_names)
        if settings["publish_dehazed"] and not self._detector.supports_restoration:
            self.get_logger().warning(
                "publish_dehazed is true, but the ONNX export has no restoration variant: no "
                "dehazed images will be published (export both variants to get them)"
            )
        # Each batch size's first call captures CUDA graphs or compiles (torch_compile): pay
        # for it now rather than with stalled live frames.
        if self._detector.runs_on_gpu or settings.compile_mode is not None:
            try:
                seconds = self._detector.warm_up()
            except (RuntimeError, ValueError) as error:  # live frames will show the same fault
                self.get_logger().warning(f"warm-up failed: {error}")
            else:
                self.get_logger().info(
                    f"warm-up of batch sizes 1..{settings['max_batch_size']} took {seconds:.1f} s"
                )
        exported = settings["backend"] == "onnxruntime" and settings["onnx_path"]
        source = (
            f"ONNX {settings['onnx_path']}"
            if exported
            else f"weights {settings['weights'] or 'NONE (untrained: detections are meaningless)'}"
        )
        self.get_logger().info(
            f"model ready: backend {self._detector.backend}, input {settings.input_size}, "
            f"classes {list(self._class_names)}, {source}"
        )
        self._qos = qos
        tracker_config = settings.tracker_config()
        created: list[Any] = []

        def publisher(message_type: Any, topic: str) -> Any:
            created.append(self._create_publisher_with_overrides(message_type, topic))
            return created[-1]

        try:
            for topic in settings["image_topics"]:
                names = output_topics(topic)
                self._cameras[topic] = CameraOutputs(
                    input_topic=input_topics[topic],
                    topics=names,
                    detections=publisher(Detection2DArray, names.detections),
                    detections_raw=publisher(Detection2DArray, names.detections_raw),
                    dehazed=publisher(Image, names.dehazed),
                    debug_image=publisher(Image, names.debug_image),
                    label_info=(
                        publisher(LabelInfo, names.label_info)
                        if settings["publish_label_info"]
                        else None
                    ),
                    tracker=Tracker(tracker_config),
                    stats=CameraStats(),
                )
                self._publish_label_info(self._cameras[topic])
        except Exception:
            # A camera whose CameraOutputs was never built still owns the publishers made for
            # it, which on_error would not find in self._cameras.
            for made in created:
                self.destroy_publisher(made)
            self._cameras.clear()
            raise
        self._diagnostics_pub = self._create_publisher_with_overrides(
            DiagnosticArray, "/diagnostics"
        )
        return TransitionCallbackReturn.SUCCESS

    def _check_qos_overrides(self, settings: NodeSettings) -> dict[tuple[str, str], QosEntity]:
        """Each entity's base QoS by (resolved topic, kind), its overrides checked first.

        rclpy applies the ``qos_overrides.*`` parameters when it creates the entity; a bad value
        there raised a bare RuntimeError (or a type error) naming neither parameter nor topic.
        """
        entities = self._qos_entities(dict(settings.values))
        given = self._given_parameters()
        for entity in entities:
            entity.resolve(given)  # SettingsError naming the parameter
        return {(entity.topic, entity.entity): entity for entity in entities}

    def _create_publisher_with_overrides(self, message_type: Any, topic: str) -> Any:
        entity = self._qos[(self.resolve_topic_name(topic), PUBLISHER)]
        return self.create_publisher(
            message_type,
            topic,
            qos_profile(entity.base),
            qos_overriding_options=overriding_options(entity),
            event_callbacks=publisher_without_default_event_handlers(),
        )

    def _resolve_camera_topics(self, image_topics: Sequence[str]) -> dict[str, str]:
        """Each camera topic's full name as subscribed (namespace and remapping applied).

        SettingsError naming a camera topic (or an output derived from it) that ROS would
        refuse, and two entries that are one camera, or one set of outputs, once resolved:
        ``camera/image_raw`` and ``/camera/image_raw`` in the root namespace would process every
        frame twice and publish both results on ``/camera/detections``.
        """
        self._check_topic_names(image_topics)
        inputs: dict[str, str] = {}
        outputs: dict[str, str] = {}
        for topic in image_topics:
            resolved = self.resolve_topic_name(topic)
            for other, other_resolved in inputs.items():
                if other_resolved == resolved:
                    raise SettingsError(
                        f"parameter 'image_topics': {other!r} and {topic!r} are both the topic "
                        f"{resolved!r} (after the node's namespace and remapping): list each "
                        "camera once"
                    )
            inputs[topic] = resolved
            # Expanded, not remapped: remapping two cameras' outputs together is deliberate.
            detections = self.resolve_topic_name(output_topics(topic).detections, only_expand=True)
            if detections in outputs:
                raise SettingsError(
                    f"parameter 'image_topics': camera topics {outputs[detections]!r} and "
                    f"{topic!r} would both publish on {detections!r} (outputs go to the camera "
                    "topic's namespace): give each camera its own namespace"
                )
            outputs[detections] = topic
        return inputs

    def _check_topic_names(self, image_topics: Sequence[str]) -> None:
        """SettingsError naming a camera topic (or an output derived from it) ROS would refuse."""
        for topic in image_topics:
            names = output_topics(topic)
            for name in (topic, *dataclasses.astuple(names)):
                try:
                    validate_topic_name(name)
                    full_name = expand_topic_name(name, self.get_name(), self.get_namespace())
                    validate_full_topic_name(full_name)
                except (InvalidTopicNameException, ValueError) as error:
                    what = "" if name == topic else f" (its output {name!r})"
                    reason = str(error).splitlines()[0].removeprefix("Invalid topic name: ")
                    raise SettingsError(
                        f"parameter 'image_topics': {topic!r}{what} is not a valid ROS topic "
                        f"name: {reason}"
                    ) from error

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the batcher and inference thread, subscribe to the cameras, start diagnostics."""
        with self._runtime_lock:
            try:
                self._start_processing()
            except Exception as error:  # rclpy would make it a transition error without a word
                self.get_logger().error(f"activate failed: {type(error).__name__}: {error}")
                self._stop_processing()
                return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def _start_processing(self) -> None:
        settings = self._settings
        assert settings is not None
        assert self._detector is not None
        wait_ms = resolve_batch_wait_ms(settings["max_batch_wait_ms"], self._detector.runs_on_gpu)
        if settings["max_batch_wait_ms"] == AUTO_BATCH_WAIT_MS:
            self.get_logger().info(f"max_batch_wait_ms auto: {wait_ms:g} ms")
        self._batcher = FrameBatcher(
            max_batch_size=settings["max_batch_size"],
            max_batch_wait_ms=wait_ms,
            forecast_arrivals=settings["batch_arrival_forecast"],
        )
        self._worker = InferenceWorker(
            detector_fn=self._infer,
            batcher=self._batcher,
            on_result=self._on_result,
            on_error=self._on_inference_error,
            prepare_fn=self._prepare_ahead if settings["prepare_frames_ahead"] else None,
        )
        self._worker.start()
        compressed_cameras = sum(
            camera.input_topic.endswith("/compressed") for camera in self._cameras.values()
        )
        decode_threads = resolve_decode_threads(
            settings["decode_threads"], compressed_cameras, usable_cpus()
        )
        if decode_threads:
            self._decode_pool = DecodePool(
                decode_threads, self._decode_queued, self._drop_replaced, self._on_decode_fault
            )
            self.get_logger().info(
                f"decoding {compressed_cameras} compressed camera(s) on {decode_threads} thread(s)"
            )
        for topic in settings["image_topics"]:
            # Frames the camera sent while no subscription existed were never the node's to lose.
            self._cameras[topic].stats.restart_publisher_sequence()
        self._start_receivers(settings)
        for topic in settings["image_topics"]:
            if topic not in self._receivers:
                self._subscribe_in_process(topic)
        self._diagnostics_timer = self.create_timer(
            settings["diagnostics_period_s"], self._publish_diagnostics
        )
        listening = [camera.input_topic for camera in self._cameras.values()]
        self.get_logger().info(f"active: listening to {listening}")

    def _subscribe_in_process(self, topic: str) -> None:
        """Subscribe to a camera on the node's own executor."""
        camera = self._cameras[topic]
        # The name subscribed decides: `-r image:=/cam/image_raw/compressed` carries
        # CompressedImage however the parameter spells it.
        compressed = camera.input_topic.endswith("/compressed")
        message_type = CompressedImage if compressed else Image
        entity = self._qos[(camera.input_topic, SUBSCRIPTION)]
        self._camera_subscriptions.append(
            self.create_subscription(
                message_type,
                topic,
                self._image_callback(topic, compressed),
                qos_profile(entity.base),
                qos_overriding_options=overriding_options(entity),
                event_callbacks=self._camera_subscription_events(topic),
                # Bytes, read by rosbags: rclpy's own conversion of a 720p frame holds the
                # GIL for 1.4 ms (see ros/serialized_images.py).
                raw=True,
            )
        )

    def _start_receivers(self, settings: NodeSettings) -> None:
        """Start a receiver process per raw camera where ``camera_receivers`` asks for them."""
        raw_topics = [
            topic
            for topic in settings["image_topics"]
            if not self._cameras[topic].input_topic.endswith("/compressed")
        ]
        if not use_receiver_processes(
            settings["camera_receivers"],
            len(raw_topics),
            self._detector.runs_on_gpu,
            usable_cpus(),
        ):
            return
        given = self._given_parameters()
        receivers = {}
        for index, topic in enumerate(raw_topics):
            camera = self._cameras[topic]
            receivers[topic] = CameraReceiver(
                topic=camera.input_topic,
                node_name=f"{self.get_name()}_receiver_{index}",
                namespace=self.get_namespace(),
                # The standard qos_overrides.* apply as they would to the node's subscription.
                qos=self._qos[(camera.input_topic, SUBSCRIPTION)].resolve(given),
                # A reader of its own: the receiver's thread reads beside the executor's.
                on_message=functools.partial(
                    self._on_serialized_image, topic, False, reader=SerializedImageReader()
                ),
                on_exit=functools.partial(self._receiver_exited, topic),
                on_publishers_changed=camera.stats.restart_publisher_sequence,
                on_bad_frame=functools.partial(self._receiver_bad_frame, topic),
                log_error=functools.partial(self._receiver_error, topic),
                domain_id=self.context.get_domain_id(),
                enclave=self._enclave,
            )
        # Known before they start: one that dies at once must find itself here to fall back.
        self._receivers = receivers
        try:
            start_receivers(list(receivers.values()))
        except Exception as error:  # no processes (EAGAIN, EMFILE, ...): the executor it is
            self._receivers = {}
            self.get_logger().error(
                f"could not start camera receiver processes ({type(error).__name__}: {error}); "
                "receiving every camera in the node"
            )
            return
        pids = {self._cameras[topic].input_topic: r.pid for topic, r in receivers.items()}
        self.get_logger().info(f"receiving raw cameras in their own processes: {pids}")

    def _receiver_bad_frame(self, topic: str, problem: str) -> None:
        """A frame lost in a receiver's hand-over: counted as a bad frame, logged (throttled)."""
        camera = self._cameras.get(topic)
        if camera is not None:
            camera.stats.record_bad_frame(problem)
        self._receiver_error(topic, problem)

    def _receiver_error(self, topic: str, problem: str) -> None:
        """Anything else a receiver meets: logged (throttled)."""
        if self._warnings.due(("camera receiver", topic)):
            self.get_logger().error(problem)

    def _receiver_exited(self, topic: str, receiver: CameraReceiver, reason: str) -> None:
        """A receiver process ended on its own: subscribe in the node so the camera goes on."""
        camera = self._cameras.get(topic)
        name = topic if camera is None else camera.input_topic
        self.get_logger().error(
            f"camera receiver process of {name} {reason}; receiving it in the node from now on"
        )
        # Not blocking on the lock: _stop_processing holds it while it joins this thread.
        while not receiver.stopping:
            if not self._runtime_lock.acquire(timeout=0.1):
                continue
            try:
                if (
                    receiver.stopping
                    or self._receivers.get(topic) is not receiver
                    or self._batcher is None
                ):
                    return
                self._receivers.pop(topic, None)
                try:
                    self._subscribe_in_process(topic)
                except Exception as error:  # e.g. the context shutting down meanwhile
                    self._unreceived.add(topic)
                    self.get_logger().error(
                        f"could not subscribe to {name} in the node ({type(error).__name__}: "
                        f"{error}): it is not received until the node is activated again"
                    )
            finally:
                self._runtime_lock.release()
            return

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the diagnostics timer and the inference thread; keep the model."""
        try:
            self._stop_processing()
        except TimeoutError as error:  # rclpy would make it a transition error without a word
            self.get_logger().error(f"deactivate failed: {error}")
            raise
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and free the model (and its GPU memory)."""
        self._release_model_and_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing and free the model and publishers, from whatever state."""
        self.shutdown_cleanly()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: free everything, so the node is unconfigured and holds nothing.

        rclpy's default would go back to unconfigured with whatever the failed transition had
        made (a loaded model, publishers), which the next configure then creates a second time.
        """
        self.get_logger().error(
            f"a transition from {state.label} raised; releasing the model and publishers"
        )
        try:
            self.shutdown_cleanly()
        except TimeoutError as error:  # a hung inference thread still uses the model: keep it
            self.get_logger().fatal(f"{error}; the node cannot recover and is finalized")
            return TransitionCallbackReturn.FAILURE
        return super().on_error(state)

    def _stop_processing(self) -> None:
        with self._runtime_lock:
            receivers, self._receivers = list(self._receivers.values()), {}
            self._unreceived.clear()
            try:
                stop_receivers(receivers)
            except Exception as error:  # the batcher and worker below must stop regardless
                self.get_logger().error(f"stopping camera receivers: {error}")
            for subscription in self._camera_subscriptions:
                self.destroy_subscription(subscription)
            self._camera_subscriptions.clear()
            if self._diagnostics_timer is not None:
                self.destroy_timer(self._diagnostics_timer)
                self._diagnostics_timer = None
            stuck_decodes: list[str] = []
            if self._decode_pool is not None:
                # Before the worker and the batcher: a decode under way still queues its frame.
                for topic, _ in self._decode_pool.stop(timeout_s=30.0):
                    if topic in self._cameras:
                        self._cameras[topic].stats.record_dropped()
                stuck_decodes = self._decode_pool.stuck_threads
                self._decode_pool = None
            try:
                if self._worker is not None:
                    self._worker.stop(timeout_s=30.0)
                    self._worker = None
            finally:  # also when the worker is stuck in the model: its frames are counted
                if self._batcher is not None:
                    # Counted here, in the camera's statistics, rather than by the batcher: a
                    # new batcher starts at every activate, the statistics live from configure
                    # to cleanup like the other counts they are reported with.
                    for topic, _ in self._batcher.close():
                        if topic in self._cameras:
                            self._cameras[topic].stats.record_dropped()
                    self._batcher = None
            if stuck_decodes:  # raised last, so the worker and the batcher stopped regardless
                raise TimeoutError(
                    f"decode threads still decoding 30 s after stop: {stuck_decodes}"
                )

    def _release_model_and_publishers(self) -> None:
        with self._runtime_lock:
            for camera in self._cameras.values():
                for publisher in (
                    camera.detections,
                    camera.detections_raw,
                    camera.dehazed,
                    camera.debug_image,
                    camera.label_info,
                ):
                    if publisher is not None:
                        self.destroy_publisher(publisher)
            self._cameras.clear()
            if self._diagnostics_pub is not None:
                self.destroy_publisher(self._diagnostics_pub)
                self._diagnostics_pub = None
            if self._detector is not None:
                self._detector.close()
                self._detector = None
                release_cached_gpu_memory()

    def shutdown_cleanly(self) -> None:
        """Stop the worker and free the model whatever the lifecycle state (SIGINT path).

        Safe to call again, also from another thread at the same time (SIGINT handling and
        destroy_node): the second call waits for the first and then finds nothing left to free.
        """
        with self._runtime_lock:
            self._stop_processing()
            self._release_model_and_publishers()

    def destroy_node(self) -> None:
        """Stop the inference thread before rclpy tears down the node's entities."""
        self.shutdown_cleanly()
        super().destroy_node()

    # ---------------------------------------------------------------- model

    def _create_detector(self, settings: NodeSettings) -> Any:
        from togethernet_ros.inference import create_detector
        from togethernet_ros.inference.cpu_threads import limit_cpu_threads
        from togethernet_ros.inference.factory import resolve_auto_device

        device = resolve_auto_device(settings["device"], settings["backend"])
        if settings["precision"] == "fp16" and device != "cuda":
            raise SettingsError("parameter 'precision' fp16 needs a CUDA device, none was found")
        # Before the model loads, so loading and warm-up stay within the limit too.
        num_threads = limit_cpu_threads(settings["num_threads"])
        return create_detector(
            settings["weights"] or None,
            backend=settings["backend"],
            device=device,
            precision=settings["precision"],
            input_size=settings.input_size,
            conf_threshold=settings.detector_threshold(),
            nms_threshold=settings["nms_threshold"],
            # Capped in _on_result after the class filter, which can change at run time:
            # boxes of unpublished classes must not take the published ones' places.
            max_detections=None,
            color_order="bgr",
            allow_untrained=settings["allow_untrained_weights"],
            onnx_path=settings["onnx_path"] or None,
            cache_dir=settings["engine_cache_dir"] or None,
            max_batch_size=settings["max_batch_size"],
            compile_mode=settings.compile_mode,
            num_threads=num_threads,
        )

    def _restoration_wanted(self) -> bool:
        """Run the restoration branch only while someone consumes its output."""
        settings = self._settings
        if not self._detector.supports_restoration:
            return False  # a detection-only ONNX export: debug images fall back to the input
        for camera in self._cameras.values():
            if camera.debug_image.get_subscription_count() > 0:
                return True
            if settings["publish_dehazed"] and camera.dehazed.get_subscription_count() > 0:
                return True
        return False

    # ---------------------------------------------------------------- data path

    def _camera_subscription_events(self, topic: str) -> Any:
        """rclpy's default QoS warnings, and a restart of the frames-lost count whenever a
        camera publisher connects or leaves (a restarted driver numbers its frames from 1)."""
        try:
            from rclpy.event_handler import SubscriptionEventCallbacks
        except ImportError:  # Humble: no matched event, and no sequence numbers to count
            return None
        camera = self._cameras[topic]
        return SubscriptionEventCallbacks(
            matched=lambda _status: camera.stats.restart_publisher_sequence()
        )

    def _image_callback(self, topic: str, compressed: bool) -> Any:
        """The camera subscription's callback, taking rclpy's message info where it has one.

        rclpy hands the info (DDS write and reception times: where the receive delay goes) to
        a callback with two open arguments since Iron; Humble's calls every
        callback with the message alone, so there the split is not measured.
        """
        if _rclpy_passes_message_info():
            return functools.partial(self._on_serialized_image, topic, compressed)
        return lambda serialized: self._on_serialized_image(topic, compressed, serialized, None)

    def _on_serialized_image(
        self,
        topic: str,
        compressed: bool,
        serialized: bytes | memoryview,
        message_info: dict[str, int | None] | None,
        reader: SerializedImageReader | None = None,
    ) -> None:
        """Subscription callback: read, decode and queue a frame; never waits on inference.

        ``reader``: a receiver thread's own (the executor's is the node's).
        """
        callback_ns = time.time_ns()
        camera = self._cameras.get(topic)
        batcher = self._batcher
        if camera is None or batcher is None:
            return
        received_at = time.monotonic()
        try:
            message = (reader or self._image_reader).read(serialized, compressed)
        except ImageDecodeError as error:
            camera.stats.record_input(
                split=split_receive_delay(None, message_info, callback_ns),
                sequence_number=_publication_sequence_number(message_info),
            )
            self._drop_bad_frame(topic, camera, error)
            return
        self._record_arrival(camera, message.header, message_info, callback_ns)
        decode_pool = self._decode_pool
        if compressed and decode_pool is not None:
            decode_pool.submit(topic, (message, received_at))
            return
        self._queue_frame(topic, camera, batcher, message, compressed, received_at)

    def _decode_queued(self, topic: str, queued: tuple[Any, float]) -> None:
        """Decode thread: a compressed frame into the batcher, as the callback would have."""
        camera = self._cameras.get(topic)
        batcher = self._batcher
        if camera is None:
            return
        if batcher is None:  # finished after the node stopped: received, never processed
            camera.stats.record_dropped()
            return
        message, received_at = queued
        self._queue_frame(topic, camera, batcher, message, True, received_at)

    def _drop_replaced(self, topic: str, _queued: object) -> None:
        """A compressed frame replaced by a newer one before its decode: dropped, counted."""
        camera = self._cameras.get(topic)
        if camera is not None:
            camera.stats.record_dropped()

    def _on_decode_fault(self, topic: str, error: Exception) -> None:
        camera = self._cameras.get(topic)
        problem = f"unexpected {type(error).__name__} queueing a decoded frame: {error}"
        if camera is not None:
            camera.stats.record_bad_frame(problem)
        if self._warnings.due(("decode thread fault", topic)):
            name = topic if camera is None else camera.input_topic
            self.get_logger().error(f"{problem} on {name}; frame dropped")

    def _record_arrival(
        self,
        camera: CameraOutputs,
        header: Any,
        message_info: dict[str, int | None] | None,
        callback_ns: int,
    ) -> None:
        """Count a frame, its receive delay, that delay's parts and its publisher's number."""
        stamp_s = _stamp_seconds(header)
        if not self.get_clock().ros_time_is_active:
            now_s: float | None = callback_ns * 1e-9
            stamp_ns: int | None = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        else:  # stamps on /clock: only the parts after the write are on the system clock
            now_s = self._latency_clock_s()
            stamp_ns = None
        camera.stats.record_input(
            receive_delay_ms=(now_s - stamp_s) * 1e3 if now_s is not None and stamp_s else None,
            split=split_receive_delay(stamp_ns, message_info, callback_ns),
            sequence_number=_publication_sequence_number(message_info),
        )
        if not stamp_s:
            camera.stats.record_unstamped()
            if self._unstamped_warnings.due(camera.input_topic):
                self.get_logger().warning(
                    f"frames on {camera.input_topic} have no header stamp (0): their latency cannot be "
                    "measured and box smoothing times them by arrival; set header.stamp in the "
                    "camera driver"
                )

    def _queue_frame(
        self,
        topic: str,
        camera: CameraOutputs,
        batcher: FrameBatcher,
        message: Any,
        compressed: bool,
        received_at: float,
    ) -> None:
        """Decode one camera message (rosbags' Image or CompressedImage) into the batcher."""
        try:
            image = self._decode(message, compressed, camera.bit_depth)
        except ImageDecodeError as error:
            self._drop_bad_frame(topic, camera, error)
            return
        except Exception as error:  # an exception escaping a callback would end the node's spin
            problem = f"unexpected {type(error).__name__} decoding a frame: {error}"
            camera.stats.record_bad_frame(problem)
            if self._warnings.due(("decoding fault", topic)):
                self.get_logger().error(f"{problem} on {camera.input_topic}; frame dropped")
            return
        frame = CameraFrame(
            topic=topic, image=image, header=message.header, received_at=received_at
        )
        if batcher.put(topic, frame):
            camera.stats.record_dropped()

    def _drop_bad_frame(self, topic: str, camera: CameraOutputs, error: ImageDecodeError) -> None:
        camera.stats.record_bad_frame(str(error))
        if self._warnings.due(("bad frame", topic)):
            self.get_logger().warning(f"bad frame on {camera.input_topic}: {error}; frame dropped")

    def _latency_clock_s(self) -> float | None:
        """Now, on the clock the stamps are on: the system clock, or /clock under use_sim_time.

        None while use_sim_time waits for its first /clock: no latency can be measured yet.
        Replayed stamps are from the recording, so the system clock would report hours.
        """
        clock = self.get_clock()
        if not clock.ros_time_is_active:
            return time.time()
        nanoseconds = clock.now().nanoseconds
        return nanoseconds * 1e-9 if nanoseconds else None

    def _decode(self, message: Any, compressed: bool, bit_depth: SensorBitDepth) -> np.ndarray:
        max_pixels = self._settings["max_image_pixels"]
        if compressed:
            if len(message.data) == 0:
                raise ImageDecodeError("CompressedImage has no data (zero-size)")
            # The JPEG/PNG header gives the size, so an oversized frame is refused before
            # decoding it; other formats are decoded first and then checked.
            size = encoded_image_size(np.frombuffer(message.data, np.uint8))
            if size is not None:
                _check_pixel_count(*size, max_pixels)
            image = decode_compressed_message(message, depth=bit_depth)
            height, width = image.shape[:2]
        else:
            # Check before decoding so an oversized frame costs no copy.
            height, width = int(message.height), int(message.width)
        _check_pixel_count(width, height, max_pixels)
        return image if compressed else decode_image_message(message, depth=bit_depth)

    def _infer(self, frames: list[CameraFrame]) -> Sequence[Any]:
        return self._detector.detect(
            [frame.image for frame in frames], restore=self._restoration_wanted()
        )

    def _prepare_ahead(self, topic: str, frame: CameraFrame) -> bool:
        """Worker thread, while the batch waits: pre-process this frame now."""
        prepared = self._detector.prepare_ahead(topic, frame.image)
        camera = self._cameras.get(topic)
        if prepared and camera is not None:
            camera.stats.record_prepared_ahead()
        return prepared

    def _on_inference_error(self, error: BaseException, batch: list[tuple[str, Any]]) -> None:
        if not self.context.ok():
            # SIGINT shut the context down before shutdown_cleanly stopped this thread: the
            # batch in hand could not publish. A stop, not an inference failure.
            return
        cameras = sorted({camera_id for camera_id, _ in batch})
        if self._warnings.due(("inference error", tuple(cameras))):
            self.get_logger().error(
                f"inference failed for a batch from {cameras}: {type(error).__name__}: {error}"
            )
        for camera_id in cameras:
            if camera_id in self._cameras:
                self._cameras[camera_id].stats.record_bad_frame(f"inference error: {error}")

    def _on_result(self, topic: str, frame: CameraFrame, result: Any, info: BatchInfo) -> None:
        """Worker thread: filter, smooth and publish one frame's results."""
        camera = self._cameras.get(topic)
        settings = self._settings
        if camera is None or settings is None:
            return
        # The detector may keep lower scores than conf_threshold for the tracker's low stage
        # (see tracking/score_gate.py); only the tracker sees those.
        candidates = keep_classes(
            result.detections, self._class_names, settings.class_filter
        ).strongest(settings["max_detections"])
        detections = scoring_at_least(candidates, settings["conf_threshold"])
        names = (
            tuple(str(index) for index in range(len(self._class_names)))
            if settings["class_id_as_index"]
            else self._class_names
        )
        header = frame.header
        stamp_s = _stamp_seconds(header)
        # Encoding is skipped while nobody listens (outputs are volatile, so a later subscriber
        # would not get this frame anyway).
        if settings["publish_raw_detections"] and camera.detections_raw.get_subscription_count():
            camera.detections_raw.publish(_detections_cdr(header, detections, names))
        if settings["tracking.enabled"]:
            with camera.tracker_lock:  # the tracker runs for every frame: it keeps state
                tracked = self._track(topic, camera, frame, candidates, stamp_s)
            # A track of a class taken out of `classes` at run time would otherwise coast on,
            # published, for up to tracking.max_misses frames.
            tracked = keep_classes(tracked, self._class_names, settings.class_filter)
            output: Detections | TrackedDetections = tracked
            track_ids = tracked.track_ids
        else:
            output, track_ids = detections, None
        if camera.detections.get_subscription_count():
            camera.detections.publish(_detections_cdr(header, output, names, track_ids))
        if (
            result.dehazed is not None
            and settings["publish_dehazed"]
            and camera.dehazed.get_subscription_count() > 0
        ):
            camera.dehazed.publish(self._image_message(result.dehazed, header))
        if camera.debug_image.get_subscription_count() > 0:
            canvas = result.dehazed if result.dehazed is not None else frame.image
            annotated = draw_detections(canvas, output, self._class_names, track_ids=track_ids)
            camera.debug_image.publish(self._image_message(annotated, header))
        now_s = self._latency_clock_s() if stamp_s else None
        latency_ms = None if now_s is None else (now_s - stamp_s) * 1e3
        # Decode, batching wait, smoothing and message building: what the node adds to the model.
        in_node_ms = (time.monotonic() - frame.received_at) * 1e3
        camera.stats.record_output(
            latency_ms=latency_ms,
            inference_ms=info.inference_time_s * 1e3,
            batch_size=info.batch_size,
            node_overhead_ms=max(0.0, in_node_ms - info.inference_time_s * 1e3),
            batch_wait_ms=max(0.0, (info.started_at - frame.received_at) * 1e3),
        )

    def _track(
        self,
        topic: str,
        camera: CameraOutputs,
        frame: CameraFrame,
        candidates: Detections,
        stamp_s: float,
    ) -> TrackedDetections:
        """Worker thread, tracker lock held: smooth one frame's detections.

        An unstamped frame (stamp 0) is timed by its arrival (see tracking/frame_timeline.py);
        a frame in other pixels than the last (frame_id or size changed) restarts the tracks.
        """
        height, width = frame.image.shape[:2]
        source = (frame.header.frame_id, height, width)
        previous = camera.timeline.source
        track_time_s, restart = camera.timeline.place(stamp_s, frame.received_at, source)
        if restart:
            camera.tracker.reset()
            if self._warnings.due(("source changed", topic)):
                self.get_logger().warning(
                    f"frames on {camera.input_topic} changed from {_describe_source(previous)} to "
                    f"{_describe_source(source)}: tracks restarted (their boxes are in the "
                    "old frame's pixels); two publishers on one topic restart them every frame"
                )
        tracked = camera.tracker.update(candidates, track_time_s, image_size=(height, width))
        reset = camera.tracker.last_reset
        consecutive_gaps = camera.resets.record(reset, source_changed=restart)
        # One gap is a pause; gaps on consecutive frames mean the tracks never outlive a
        # frame, which silently empties the smoothed output when min_hits >= 2.
        if (
            reset is not None
            and consecutive_gaps >= EVERY_FRAME_RESETS
            and self._warnings.due(("tracks restart every frame", topic))
        ):
            self.get_logger().warning(
                every_frame_reset_warning(
                    camera.input_topic,
                    reset,
                    camera.tracker.config.min_hits,
                    self.resolve_topic_name(camera.topics.detections),
                    camera.stats.dropped,
                )
            )
        return tracked

    @staticmethod
    def _image_message(pixels: np.ndarray, header: Any) -> Image:
        message = Image()
        message.header = _rclpy_header(header)
        message.height, message.width = int(pixels.shape[0]), int(pixels.shape[1])
        message.encoding = "bgr8"
        message.step = message.width * 3
        # bytes assignment is the fast path (assigning a numpy array costs ~0.4 s at 1080p).
        message.data = np.ascontiguousarray(pixels).tobytes()
        return message

    def _publish_label_info(self, camera: CameraOutputs) -> None:
        if camera.label_info is None:
            return
        message = LabelInfo()
        message.header.stamp = self.get_clock().now().to_msg()
        message.class_map = [
            VisionClass(class_id=index, class_name=name)
            for index, name in enumerate(self._class_names)
        ]
        message.threshold = float(self._settings["conf_threshold"])
        camera.label_info.publish(message)

    # ---------------------------------------------------------------- diagnostics

    def _publish_diagnostics(self) -> None:
        # The timer callback may already be running when deactivate destroys the timer and
        # cleanup the cameras and publisher; an exception here would end the executor's spin.
        # A transition holds the lock for seconds (joining the inference thread, loading a
        # model): this tick is skipped then rather than stalling the executor's other callbacks.
        if not self._runtime_lock.acquire(blocking=False):
            return
        try:
            self._publish_diagnostics_locked()
        finally:
            self._runtime_lock.release()

    def _publish_diagnostics_locked(self) -> None:
        if self._diagnostics_pub is None or self._batcher is None:
            return
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        backend = getattr(self._detector, "backend", "unknown")
        for topic, camera in self._cameras.items():
            stats = camera.stats
            input_hz, output_hz = stats.rates_hz()
            rhythm = self._batcher.arrival_rhythm(topic)
            latency = stats.latency_ms.summary()
            inference = stats.inference_ms.summary()
            overhead = stats.node_overhead_ms.summary()
            receive_delay = stats.receive_delay_ms.summary()
            batch_wait = stats.batch_wait_ms.summary()
            batches = stats.batch_sizes.summary()
            lost = stats.lost_before_node
            status = DiagnosticStatus()
            # The resolved topic: detectors in two namespaces given the same relative topic
            # would otherwise report under one name, which aggregators merge.
            status.name = f"{self.get_name()}: {camera.input_topic}"
            status.hardware_id = backend
            healthy, message = stats.health()
            resets = camera.resets.snapshot()
            if healthy and resets.every_frame and self._settings["tracking.enabled"]:
                # Frames flow, yet the smoothed output may be empty: say why.
                healthy, message = False, resets.status_message()
            status.level = DiagnosticStatus.OK if healthy else DiagnosticStatus.WARN
            status.message = message[:200]
            values = {
                "input_rate_hz": f"{input_hz:.2f}",
                "output_rate_hz": f"{output_hz:.2f}",
                "frames_received": str(stats.received),
                "frames_processed": str(stats.processed),
                "dropped_frames": str(stats.dropped),
                "frames_lost_before_node": "unknown" if lost is None else str(lost),
                "bad_frames": str(stats.bad_frames),
                "frames_prepared_ahead": str(stats.prepared_ahead),
                "frames_without_stamp": str(stats.unstamped),
                # Each window states its sample count (<window>_samples) and flags a p95/p99
                # from too few samples (the first seconds) with <window>_p95_reliable "false".
                **latency_values("latency", latency, (50, 95, 99)),
                **latency_values("receive_delay", receive_delay, (50, 99)),
                **latency_values("driver_delay", stats.driver_delay_ms.summary(), (50, 99)),
                **latency_values("transport_delay", stats.transport_delay_ms.summary(), (50, 99)),
                **latency_values("executor_delay", stats.executor_delay_ms.summary(), (50, 99)),
                **latency_values("batch_wait", batch_wait, (50, 99)),
                **latency_values("inference", inference, (50,)),
                **latency_values("node_overhead", overhead, (50, 95)),
                "percentile_method": PERCENTILE_METHOD,
                **resets.values(),
                "batch_size_mean": f"{batches.mean:.2f}",
                # What the batcher expects of this camera (it waits only for frames due before
                # a batch's deadline): its frame period and arrival jitter window.
                "arrival_period_ms": "unknown" if rhythm is None else f"{rhythm[0] * 1e3:.2f}",
                "arrival_jitter_ms": "unknown" if rhythm is None else f"{rhythm[1] * 1e3:.2f}",
                "backend": backend,
                "receiver": describe_receiver(
                    self._receivers.get(topic), lost=topic in self._unreceived
                ),
                "latency_clock": "ros (use_sim_time)"
                if self.get_clock().ros_time_is_active
                else "system",
            }
            status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
            array.status.append(status)
        self._diagnostics_pub.publish(array)


def _detections_cdr(
    header: Any,
    found: Detections | TrackedDetections,
    class_names: tuple[str, ...],
    track_ids: np.ndarray | None = None,
) -> bytes:
    """A serialized Detection2DArray of ``found`` (boxes in source pixels) under ``header``.

    Publishing the bytes skips building ~5 rclpy message objects per box and converting them
    again in ``publish``: 0.13 ms instead of 2.6 ms for 100 boxes (see bag/detection_cdr.py).
    """
    return encode_detection2d_array(
        (header.stamp.sec, header.stamp.nanosec),
        header.frame_id,
        found.boxes,
        found.scores,
        class_labels(found.class_ids, class_names),
        None if track_ids is None else [str(track) for track in track_ids.tolist()],
    )


def _rclpy_header(header: Any) -> Header:
    """``header`` as an rclpy Header: frames read from CDR bytes carry rosbags' dataclass."""
    if isinstance(header, Header):
        return header
    stamp = Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
    return Header(stamp=stamp, frame_id=str(header.frame_id))


def _describe_source(source: Any) -> str:
    frame_id, height, width = source
    return f"{width}x{height} in frame {frame_id!r}"


def _check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    if height * width > max_pixels:
        raise ImageDecodeError(
            f"image {width}x{height} has {height * width} pixels, more than "
            f"max_image_pixels={max_pixels}"
        )


def _check_class_filter(settings: NodeSettings, class_names: tuple[str, ...]) -> None:
    unknown = unknown_classes(named_classes(settings["classes"]), class_names)
    if unknown:
        raise SettingsError(
            f"parameter 'classes' names {unknown}, which the model does not have; its classes "
            f"are {list(class_names)} (or use ['all'])"
        )


def main(args: Sequence[str] | None = None) -> int:
    """Console script `detector_node`: run the node until SIGINT/SIGTERM; exit 0 on clean stop."""
    # Before any frame is allocated: taking a 720p image cost ~4 ms of page faults without it.
    heap_tuned = keep_frames_on_the_heap()
    argv = sys.argv if args is None else args
    missing = [str(path) for path in params_file_paths(argv) if not path.is_file()]
    if missing:
        print(f"detector_node: params file not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        rclpy.init(args=args)
    except RuntimeError as error:  # rcl refuses the command line, e.g. a params file's YAML
        print(f"detector_node: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        node = DetectorNode(enclave=enclave_name(argv))
    except SettingsError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"{error}; exiting")
        rclpy.try_shutdown()
        return 1
    forward_library_logs(node.get_logger())
    node.warn_about_lost_command_line_values(argv)
    node.warn_about_params_files_for_other_names(argv)
    node.get_logger().info(
        "glibc heap tuned: frame-sized buffers are reused instead of mapped afresh"
        if heap_tuned
        else "glibc heap defaults kept (not glibc, or MALLOC_*_THRESHOLD_ set)"
    )
    try:
        # Read here, before configure checks the rest: `autostart: 0` or 'false' must not
        # leave the node idle or start it against the user's word.
        autostart, switch_interval_ms = (
            check_value(SPECS_BY_NAME[name], node.get_parameter(name).value)
            for name in ("autostart", "gil_switch_interval_ms")
        )
    except SettingsError as error:
        node.get_logger().fatal(f"{error}; exiting")
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    if switch_interval_ms > 0:
        # Process-wide, so only here, in the node's own executable.
        sys.setswitchinterval(switch_interval_ms / 1000.0)
        node.get_logger().info(f"GIL switch interval {switch_interval_ms:g} ms")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    exit_code = 0
    try:
        if autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                if not rclpy.ok():
                    return exit_code  # stopped by SIGINT/SIGTERM while configuring
                node.get_logger().fatal("could not configure the detector; exiting")
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("could not activate the detector; exiting")
                return 1
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # SIGINT's handler shuts the context down from another thread; landing between the
        # executor's check and its next wait set, it surfaces as RCLError ("the given context
        # is not valid") instead of ExternalShutdownException: a stop all the same.
        if rclpy.ok():
            raise
    finally:
        try:
            node.shutdown_cleanly()
        except TimeoutError as error:
            node.get_logger().fatal(f"{error}; exiting without waiting for it")
            sys.stdout.flush()
            sys.stderr.flush()
            # The inference thread is not a daemon (a normal stop lets it finish publishing),
            # so an ordinary exit would wait forever for one stuck in the model.
            os._exit(1)
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
