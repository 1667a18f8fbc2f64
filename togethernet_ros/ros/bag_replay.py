"""Replay a bag's images over real DDS into a real detector_node process and measure it.

The harness is one rclpy node in this process: a publisher per camera topic (the bag's CDR
bytes are published as they are, no re-serialization), and reliable subscriptions to the node's
outputs. Frames go out at the recorded rate × ``rate``, or, with ``rate=0``, as fast as the node
accepts them (a camera's next frame is sent once its previous one came back). Outputs are
matched to frames by camera namespace and header stamp (see bag/replay_metrics.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from togethernet_ros.bag.background_bag_writer import BackgroundBagWriter
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader, BagRecord
from togethernet_ros.bag.detection_cdr import header_stamp_from_cdr
from togethernet_ros.bag.image_codec import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE
from togethernet_ros.bag.output_topics import check_distinct_outputs, output_topics
from togethernet_ros.bag.replay_metrics import ReceivedOutput, SentFrame, replay_metrics
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, LABEL_INFO
from togethernet_ros.ros.background_spin import BackgroundSpinner
from togethernet_ros.ros.local_dds import local_dds_environment
from togethernet_ros.ros.node_settings import SPECS_BY_NAME, SettingsError, check_value
from togethernet_ros.ros.params_file import ParamsFileError, read_sections
from togethernet_ros.ros.qos_profiles import qos_profile
from togethernet_ros.ros.qos_settings import (
    PUBLISHER,
    SUBSCRIPTION,
    QosSettings,
    detector_entities,
)
from togethernet_ros.ros.replay_node_process import NodeProcess, overlay_section
from togethernet_ros.ros.replay_resource_monitor import ResourceMonitor, machine_description

ROS_TYPES = {IMAGE_TYPE: Image, COMPRESSED_IMAGE_TYPE: CompressedImage}
# Node parameters the replay sets unless the caller overrides them (see _Harness for why).
REPLAY_NODE_DEFAULTS = {"input_reliability": "reliable", "input_depth": 10}
# Longest a wait for an output goes without checking that the node is still running.
NODE_CHECK_PERIOD_S = 0.5
# A camera whose stamps repeat is drained once no output came for this long after its last frame.
DRAIN_QUIET_S = 1.0


class ReplayError(RuntimeError):
    """The replay could not run (node failed to start, no image topics, ...)."""


@dataclass
class ReplayOptions:
    """How to replay and what to record."""

    image_topics: list[str] | None = None
    rate: float = 1.0
    max_frames: int | None = None
    params_file: Path | None = None
    node_parameters: dict[str, Any] = field(default_factory=dict)
    record_bag: Path | None = None
    record_dehazed: bool = False
    record_debug: bool = False
    startup_timeout_s: float = 180.0
    drain_timeout_s: float = 10.0
    accept_timeout_s: float = 10.0
    domain_id: int | None = None
    node_log: Path | None = None
    node_command: list[str] | None = None
    # Subscribers each detections topic must have before playback (this harness counts as one);
    # raise it when other observers must not miss the first outputs. It counts what this
    # harness sees: an observer that subscribed before the node existed must itself wait until
    # it sees the node's publishers, or it may still miss outputs the node sent first.
    min_output_subscribers: int = 1


@dataclass
class TrialResult:
    """One playback of the frames."""

    rate: float
    sent: list[SentFrame]
    received: list[ReceivedOutput]
    metrics: dict
    resources: dict
    started_s: float
    ended_s: float


@dataclass
class ReplayResult:
    """Everything measured; ``trials[0]`` is the main replay, later ones the peak search."""

    trials: list[TrialResult]
    node_command: list[str]
    node_exit_code: int | None
    node_log_tail: str
    resource_samples: list[dict]
    image_topics: list[str]
    peak: dict | None = None
    problems: list[dict] = field(default_factory=list)
    # How it was run (rate, frames, the node's parameter overlay) and on what machine.
    settings: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _NodeQos:
    """The QoS the node gives its camera subscriptions and its publishers, by resolved topic."""

    inputs: dict[str, QosSettings]
    outputs: dict[str, QosSettings]

    def camera_publisher(self, topic: str) -> QosSettings:
        """The harness's publisher for a camera: matches the node's subscription whatever it is.

        Reliable serves a best-effort subscription too (and loses no frames in the harness);
        durability, deadline and liveliness are the subscription's, the strictest it accepts.
        """
        return dataclasses.replace(
            self.inputs[topic], reliability="reliable", history="keep_last", depth=10, lifespan=0
        )

    def output_subscription(self, topic: str, depth: int = 100) -> QosSettings:
        """The harness's subscription to a node output: the publisher's own QoS always matches."""
        return dataclasses.replace(
            self.outputs[topic], history="keep_last", depth=depth, lifespan=0
        )


class _Harness:
    """The rclpy side: publishers, subscriptions, executor thread, optional recording."""

    def __init__(self, topics: dict[str, str], options: ReplayOptions, qos: _NodeQos) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("togethernet_replay", context=self.context)
        self.received: list[ReceivedOutput] = []
        self._min_subscribers = options.min_output_subscribers
        self._lock = threading.Condition()
        # Last arrival time of each (topic, stamp): stamps can repeat (a looping bag, stamp 0),
        # so "this frame came back" means its stamp arrived after the frame was sent.
        self._arrived: dict[tuple[str, int], float] = {}
        self._record: BackgroundBagWriter | None = None
        self.unrecorded = 0  # outputs lost because the recording had failed
        # Raises when the node under test has died (set by run_replay): every wait checks it,
        # so a crash mid-replay ends the replay instead of timing out frame after frame.
        self.check_node: Callable[[], None] = lambda: None
        # The latched label_info of each camera, delivered once (at discovery, before any
        # recording starts): written at the start of a recording so the bag has it.
        self._latched: dict[str, bytes] = {}
        # Reliable, and the node's input made reliable too (REPLAY_NODE_DEFAULTS): over Fast DDS
        # loopback about half of the 1.3 MB best-effort frames were lost on a 2-core test machine
        # (0/20 when published pre-serialized), which would measure DDS, not the node. Each QoS
        # follows what the node applies (its parameters and qos_overrides): a subscription the
        # node's publisher cannot serve (reliable to best effort, transient local to volatile)
        # would hear nothing and count every frame as dropped.
        self.publishers = {
            topic: self.node.create_publisher(
                ROS_TYPES[msgtype], topic, qos_profile(qos.camera_publisher(topic))
            )
            for topic, msgtype in topics.items()
        }
        self.output_types: dict[str, str] = {}
        self.detection_topics: list[str] = []
        for topic in topics:
            names = output_topics(topic)
            wanted = [(names.detections, Detection2DArray, DETECTION2D_ARRAY)]
            wanted.append((names.detections_raw, Detection2DArray, DETECTION2D_ARRAY))
            if names.label_info in qos.outputs:  # publish_label_info
                wanted.append((names.label_info, LabelInfo, LABEL_INFO))
            # Subscribing makes the node compute these (it skips unused outputs), so only on request.
            if options.record_dehazed:
                wanted.append((names.dehazed, Image, IMAGE_TYPE))
            if options.record_debug:
                wanted.append((names.debug_image, Image, IMAGE_TYPE))
            self.detection_topics.append(names.detections)
            for name, ros_type, type_name in wanted:
                self.output_types[name] = type_name
                profile = qos_profile(qos.output_subscription(name))
                self.node.create_subscription(
                    ros_type, name, self._callback(name), profile, raw=True
                )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = BackgroundSpinner(self.executor, "replay-spin")
        self._spinner.start()

    def _callback(self, topic: str) -> Callable[[bytes], None]:
        def on_message(raw: bytes) -> None:
            now = time.monotonic()
            stamp = header_stamp_from_cdr(raw)
            with self._lock:
                self.received.append(ReceivedOutput(topic, stamp, now))
                self._arrived[(topic, stamp)] = now
                if self.output_types[topic] == LABEL_INFO:
                    self._latched[topic] = bytes(raw)
                self._lock.notify_all()
            if self._record is not None:
                try:
                    self._record.put(topic, self.output_types[topic], time.time_ns(), raw)
                except BagError:
                    self.unrecorded += 1  # the replay loop raises the writer's error itself

        return on_message

    def start_recording(self, record: BackgroundBagWriter | None) -> None:
        """Send every received output to ``record`` (None: stop), the latched ones first."""
        if record is not None:
            with self._lock:
                latched = dict(self._latched)
            for topic, raw in sorted(latched.items()):
                record.put(topic, LABEL_INFO, time.time_ns(), raw)
        self._record = record

    def ready(self) -> bool:
        """The node subscribes to every input and publishes every detections topic."""
        inputs = all(p.get_subscription_count() > 0 for p in self.publishers.values())
        outputs = all(self.node.count_publishers(t) > 0 for t in self.detection_topics)
        observers = all(
            self.node.count_subscribers(t) >= self._min_subscribers for t in self.detection_topics
        )
        return inputs and outputs and observers

    def came_back(self, topic: str, stamp: int, sent_s: float) -> bool:
        """Whether ``topic`` delivered ``stamp`` after ``sent_s`` (harness monotonic time)."""
        with self._lock:
            return self._arrived.get((topic, stamp), -1.0) >= sent_s

    def wait_for(self, topic: str, stamp: int, sent_s: float, timeout_s: float) -> bool:
        """Block until ``topic`` delivered ``stamp`` after ``sent_s``; False on timeout.

        Raises what ``check_node`` raises when the node died meanwhile.
        """
        give_up = time.monotonic() + timeout_s
        with self._lock:
            while self._arrived.get((topic, stamp), -1.0) < sent_s:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, NODE_CHECK_PERIOD_S))
                self.check_node()
        return True

    def arrival_times(self, topic: str, since_s: float) -> list[float]:
        """When ``topic`` delivered each output from ``since_s`` on, in order."""
        with self._lock:
            return [
                o.received_s for o in self.received if o.topic == topic and o.received_s >= since_s
            ]

    def close(self) -> None:
        """Stop spinning, then shut the node, executor and context down."""
        self._spinner.stop()
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


def _node_values(params_file: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameters the replayed node gets: its config/detect.yaml defaults, the params file,
    then the overlay NodeProcess writes, merged as rcl merges them (ros/params_file.py).

    ParamsFileError where a file cannot be read as rcl would read it.
    """
    from togethernet_ros.ros.node_settings import DEFAULT_NODE_FQN, default_config_path

    defaults = read_sections([default_config_path()]).for_node(DEFAULT_NODE_FQN)
    sections = read_sections([params_file] if params_file is not None else [])
    for name, value in overrides.items():
        sections.set(name, value, overlay_section(params_file))
    return {**defaults, **sections.for_node(DEFAULT_NODE_FQN)}


def _node_parameter(
    params_file: Path | None, overrides: dict[str, Any], name: str, default: Any
) -> Any:
    """The value of one node parameter as the node gets it (``default`` where unreadable)."""
    try:
        return _node_values(params_file, overrides).get(name, default)
    except (ParamsFileError, ImportError, LookupError):
        return default  # the node will refuse the file and say why


def _node_qos(params_file: Path | None, overrides: dict[str, Any], topics: list[str]) -> _NodeQos:
    """The QoS the node applies on each camera and output topic, its qos_overrides included.

    ReplayError naming the file or parameter the node would refuse.
    """
    try:
        values = _node_values(params_file, overrides)
        for name in ("input_reliability", "input_depth", "output_reliability", "output_depth"):
            check_value(SPECS_BY_NAME[name], values[name])
        # The node runs in the root namespace without remapping: bag topics are the names.
        entities = detector_entities(values, {topic: topic for topic in topics}, lambda n: n)
        resolved = [(entity, entity.resolve(values)) for entity in entities]
    except (ParamsFileError, SettingsError, KeyError) as error:
        raise ReplayError(f"the detector node's parameters: {error}") from error
    return _NodeQos(
        inputs={e.topic: qos for e, qos in resolved if e.entity == SUBSCRIPTION},
        outputs={e.topic: qos for e, qos in resolved if e.entity == PUBLISHER},
    )


@dataclass(frozen=True)
class _BagFrames:
    """The bag's image frames, read anew from the bag for each playback while they are sent.

    Never all held in memory: an hour of two 720p cameras at 30 Hz is some 580 GB of raw
    images. A frame is read before the harness waits to send it (its due time, or the node
    taking the camera's previous frame), so reading stays off the send timing.
    """

    bag: Path
    topics: list[str] | None
    max_frames: int | None
    total: int  # frames a playback sends, from the bag's index (0: unknown, e.g. a torn mcap)

    def records(self, problems: list[dict] | None = None) -> Iterator[BagRecord]:
        """The image records in log-time order; ``problems`` gets the reader's at the end."""
        with BagReader(self.bag, self.topics) as reader:
            yield from itertools.islice(reader.records(reader.image_topics), self.max_frames)
            if problems is not None:
                problems[:] = reader.problems.to_dicts()


def _play(
    harness: _Harness,
    frames: _BagFrames,
    rate: float,
    accept_timeout_s: float,
    record: BackgroundBagWriter | None,
    progress: Callable[[int, int], None] | None,
    problems: list[dict] | None = None,
) -> list[SentFrame]:
    sent: list[SentFrame] = []
    first_log: int | None = None
    start = 0.0
    last_sent: dict[str, SentFrame] = {}
    unreadable: dict[str, int] = {}
    for index, record_in in enumerate(frames.records(problems)):
        if first_log is None:  # the clock starts once the bag is open and its first frame read
            first_log, start = record_in.log_time_ns, time.monotonic()
        topic = record_in.topic.topic
        try:
            stamp = header_stamp_from_cdr(record_in.raw)
        except struct.error:  # a message too short for its header: the node would refuse it too
            unreadable[topic] = unreadable.get(topic, 0) + 1
            continue
        if rate > 0:
            due = start + (record_in.log_time_ns - first_log) / 1e9 / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elif topic in last_sent:
            previous = last_sent[topic]
            harness.wait_for(
                output_topics(topic).detections,
                previous.stamp_ns,
                previous.sent_s,
                accept_timeout_s,
            )
        data = bytes(record_in.raw)
        harness.check_node()
        sent_at = time.monotonic()
        harness.publishers[topic].publish(data)
        sent.append(SentFrame(topic, stamp, sent_at))
        last_sent[topic] = sent[-1]
        if record is not None:
            record.put(topic, record_in.topic.msgtype, time.time_ns(), data)
        if progress is not None:
            progress(index + 1, max(frames.total, index + 1))
    if problems is not None:  # after the reader's own, which it hands over at its end
        for topic, count in sorted(unreadable.items()):
            detail = "message shorter than its header: not sent"
            problems.append(
                {"kind": "decode_error", "topic": topic, "detail": detail, "count": count}
            )
    return sent


def _drain(harness: _Harness, sent: list[SentFrame], timeout_s: float) -> None:
    """Wait until every camera's last frame of this trial came back, or ``timeout_s`` passed.

    The node keeps each camera's order, so the earlier outputs are in by then. Where the last
    frame's stamp is not its own (a camera stamping 0, a looping bag), an output of that stamp
    may be an earlier frame's: such a camera is done once its outputs stop coming
    (``DRAIN_QUIET_S`` without one after its last frame was sent).
    """
    last = {f.topic: f for f in sent}
    first_sent = {}
    stamps: dict[str, list[int]] = {}
    for frame in sent:
        first_sent.setdefault(frame.topic, frame.sent_s)
        stamps.setdefault(frame.topic, []).append(frame.stamp_ns)
    repeated = {t for t, f in last.items() if stamps[t].count(f.stamp_ns) > 1}
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        harness.check_node()
        done = []
        for topic, frame in last.items():
            outputs = output_topics(topic).detections
            if topic not in repeated:
                done.append(harness.came_back(outputs, frame.stamp_ns, frame.sent_s))
                continue
            times = harness.arrival_times(outputs, first_sent[topic])
            after_last = [t for t in times if t >= frame.sent_s]
            # Quiet for longer than a slow node's gaps between outputs (CPU batches of 1 s).
            gaps = np.diff(times)
            quiet = max(DRAIN_QUIET_S, 3 * float(np.median(gaps)) if len(gaps) else 0.0)
            done.append(bool(after_last) and time.monotonic() - times[-1] >= quiet)
        if all(done):
            return
        time.sleep(0.05)


def run_replay(
    bag: str | Path,
    options: ReplayOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    peak_search: bool = False,
    peak_max_trials: int = 5,
    log: Callable[[str], None] = lambda message: None,
) -> ReplayResult:
    """Start the node, replay ``bag`` into it, measure, optionally search peak throughput."""
    options = options or ReplayOptions()
    env = local_dds_environment(options.domain_id)
    # The harness joins the same loopback DDS session: set before the first participant exists,
    # and given back after (a caller's process keeps its own ROS_DOMAIN_ID and profiles).
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return _replay_in(Path(bag), options, env, progress, peak_search, peak_max_trials, log)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _replay_in(
    bag: Path,
    options: ReplayOptions,
    env: dict[str, str],
    progress: Callable[[int, int], None] | None,
    peak_search: bool,
    peak_max_trials: int,
    log: Callable[[str], None],
) -> ReplayResult:
    """run_replay's work, in the DDS environment ``env`` it set."""
    with BagReader(bag, options.image_topics) as reader:
        topics = {t: reader.topics[t].msgtype for t in reader.image_topics}
        records = reader.records(reader.image_topics)
        has_frames = next(records, None) is not None
        records.close()
        total = reader.image_message_count
        problems = reader.problems.to_dicts()
    if not has_frames:
        raise ReplayError(f"bag {bag} has no frames on {sorted(topics)}")
    try:
        check_distinct_outputs(sorted(topics))
    except ValueError as error:
        # The node would refuse them at configure, after its start-up.
        raise ReplayError(f"{error}; choose the cameras with --topic") from None
    if options.max_frames is not None:
        total = min(total, options.max_frames) if total else 0
    frames = _BagFrames(Path(bag), options.image_topics, options.max_frames, total)
    parameters = {"image_topics": sorted(topics), **REPLAY_NODE_DEFAULTS, **options.node_parameters}
    # The harness's QoS follows the node's (see _Harness).
    node_qos = _node_qos(options.params_file, parameters, sorted(topics))
    process = NodeProcess(
        options.params_file, parameters, env, options.node_log, options.node_command
    )
    try:
        harness = _Harness(topics, options, node_qos)
    except BaseException:
        process.cleanup()  # its overlay folder; the node was not started yet
        raise
    harness.check_node = _node_checker(process)
    record: BackgroundBagWriter | None = None
    monitor = None
    trials: list[TrialResult] = []
    peak = None
    try:
        process.start()
        log(f"started detector_node (pid {process.pid}); waiting for it to subscribe")
        deadline = time.monotonic() + options.startup_timeout_s
        while not harness.ready():
            if process.exited() is not None:
                raise ReplayError(
                    f"detector_node exited with code {process.exited()} during start-up:\n"
                    f"{process.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"detector_node not ready after {options.startup_timeout_s:.0f} s:\n"
                    f"{process.log_tail()}"
                )
            time.sleep(0.1)
        time.sleep(0.3)  # discovery settles in both directions
        monitor = ResourceMonitor(process.pid)
        monitor.start()
        if options.record_bag is not None:
            record = BackgroundBagWriter(options.record_bag)
            harness.start_recording(record)
        trials.append(
            _trial(harness, frames, options.rate, options, record, progress, monitor, problems)
        )
        if peak_search:
            harness.start_recording(None)  # the recorded bag holds the main replay only
            peak = _peak_search(harness, frames, options, monitor, trials, peak_max_trials, log)
    finally:
        if monitor is not None:
            monitor.stop()
        exit_code = process.stop()
        harness.close()
        tail = process.log_tail()
        process.cleanup()
        # Closed once nothing can put any more; an exception already on its way wins.
        recording_failure = record.close() if record is not None else None
    if recording_failure is not None:
        raise ReplayError(str(recording_failure))
    return ReplayResult(
        trials=trials,
        node_command=process.command,
        node_exit_code=exit_code,
        node_log_tail=tail,
        resource_samples=monitor.samples if monitor else [],
        image_topics=sorted(topics),
        peak=peak,
        problems=problems,
        settings={
            "rate": options.rate,
            "max_frames": options.max_frames,
            "frames": len(trials[0].sent),
            "peak_search": peak_search,
            "params_file": None if options.params_file is None else str(options.params_file),
            "node_parameter_overlay": parameters,  # defaults + overrides, as the node got them
            "domain_id": env.get("ROS_DOMAIN_ID"),
        },
        machine=machine_description(),
    )


def _node_checker(process: NodeProcess) -> Callable[[], None]:
    """A check that raises ReplayError, with the node's log tail, once the node has exited."""

    def check() -> None:
        code = process.exited()
        if code is not None:
            raise ReplayError(
                f"detector_node exited with code {code} during the replay:\n{process.log_tail()}"
            )

    return check


def _trial(
    harness: _Harness,
    frames: _BagFrames,
    rate: float,
    options: ReplayOptions,
    record: BackgroundBagWriter | None,
    progress: Callable[[int, int], None] | None,
    monitor: ResourceMonitor,
    problems: list[dict] | None = None,
) -> TrialResult:
    with harness._lock:
        first_index = len(harness.received)
    started = time.monotonic()
    sent = _play(harness, frames, rate, options.accept_timeout_s, record, progress, problems)
    _drain(harness, sent, options.drain_timeout_s)
    ended = time.monotonic()
    with harness._lock:
        received = list(harness.received[first_index:])
    return TrialResult(
        rate=rate,
        sent=sent,
        received=received,
        metrics=replay_metrics(sent, received),
        resources=monitor.summary(since=started),
        started_s=started,
        ended_s=ended,
    )


def _recorded_fps(frames: Iterable[BagRecord]) -> float:
    """Frames/s of the recording, the cameras' rates added (the unit of throughput_fps).

    Counting all cameras' frames over one span would count k cameras × n frames as k·n - 1
    intervals instead of k·(n - 1): 22 instead of 20 frames/s for two 10 Hz cameras × 6 frames.
    """
    times: dict[str, list[int]] = {}
    for record in frames:
        times.setdefault(record.topic.topic, []).append(record.log_time_ns)
    rates = [(len(t) - 1) / ((max(t) - min(t)) / 1e9) for t in times.values() if max(t) > min(t)]
    return sum(rates) if rates else float("nan")


def _peak_search(
    harness: _Harness,
    frames: _BagFrames,
    options: ReplayOptions,
    monitor: ResourceMonitor,
    trials: list[TrialResult],
    max_trials: int,
    log: Callable[[str], None],
    max_loss: float = 0.05,
) -> dict:
    """Highest playback rate factor with ≤ ``max_loss`` dropped frames (bisection)."""
    recorded_fps = _recorded_fps(frames.records())
    closed_loop = _trial(harness, frames, 0.0, options, None, None, monitor)
    trials.append(closed_loop)
    accepted_fps = closed_loop.metrics["overall"]["throughput_fps"] or 0.0
    log(f"peak search: as fast as accepted = {accepted_fps:.2f} frames/s")
    if not recorded_fps or recorded_fps != recorded_fps or accepted_fps <= 0:
        skipped = (
            "nothing came back as fast as accepted"
            if accepted_fps <= 0
            else "the recording's frame rate is unknown (a single frame per camera?)"
        )
        return {
            "max_loss": max_loss,
            "accepted_fps": accepted_fps,
            "best_rate": None,
            "skipped": skipped,
        }
    # The closed-loop rate (one frame in flight per camera) is below what a batching node
    # takes: the rate doubles while every trial passes, then bisects.
    low, high = 0.0, None
    best = None
    factor = accepted_fps / recorded_fps
    for _ in range(max_trials):
        time.sleep(1.0)  # let late outputs of the previous trial arrive before matching anew
        trial = _trial(harness, frames, factor, options, None, None, monitor)
        trials.append(trial)
        loss = trial.metrics["overall"]["drop_rate"] or 0.0
        log(
            f"peak search: rate x{factor:.3f} ({factor * recorded_fps:.2f} frames/s) loss {loss:.1%}"
        )
        if loss <= max_loss:
            best = (factor, trial)
            low = factor
        else:
            high = factor
        factor = 2 * factor if high is None else (low + high) / 2
    return {
        # Every tried rate passed: the peak lies above the best one (more trials find it).
        "at_search_ceiling": high is None,
        "max_loss": max_loss,
        "accepted_fps": accepted_fps,
        "recorded_fps": round(recorded_fps, 3),
        "best_rate": None if best is None else round(best[0], 4),
        "best_fps": None if best is None else round(best[0] * recorded_fps, 3),
        "best_throughput_fps": None
        if best is None
        else best[1].metrics["overall"]["throughput_fps"],
        # The send rate the harness reached there (it can fall behind the one asked for).
        "best_sent_fps": None if best is None else best[1].metrics["overall"]["send_rate_fps"],
        "trials": [
            {
                "rate": round(t.rate, 4),
                "drop_rate": t.metrics["overall"]["drop_rate"],
                "sent_fps": t.metrics["overall"]["send_rate_fps"],
                "throughput_fps": t.metrics["overall"]["throughput_fps"],
                "latency_p50_ms": t.metrics["overall"]["latency_ms"]["p50"],
            }
            for t in trials[1:]
        ],
    }
