"""The node's end of a camera receiver process: starts it, reads its frames, stops it.

Each raw camera can be received in its own process (ros/camera_receiver_process.py), so
cameras triggered together are taken from DDS on several cores at once and the node's process
only reads each frame in place from shared memory (pipeline/shared_frame_slots.py). A thread
per receiver waits for its notices (the GIL released while it waits) and calls the node's
handler with a read-only view of the frame's serialized bytes, then hands the slot back.

Plain Python (the child process imports rclpy, this module does not).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

from togethernet_ros.pipeline.shared_frame_slots import (
    FILE_PREFIX,
    PUBLISHERS_CHANGED,
    FrameNotice,
    SlotReader,
    encode_release,
    remove_stale_writer_files,
    remove_writer_files,
    unique_prefix,
)
from togethernet_ros.ros.qos_settings import QosSettings

CAMERA_RECEIVER_CHOICES = ("auto", "executor", "processes")
# Datagrams are notices of a few hundred bytes.
_NOTICE_BUFFER = 65536
# Cores auto keeps free beside one receiver per camera: the node's executor and inference
# threads.
_CORES_BESIDE_RECEIVERS = 2

MessageHandler = Callable[[memoryview, "dict[str, int | None] | None"], None]


def use_receiver_processes(
    requested: str, raw_cameras: int, runs_on_gpu: bool, cpu_count: int | None
) -> bool:
    """Whether the raw cameras get receiver processes for ``camera_receivers: requested``.

    auto: on a GPU (where the node's time goes to taking frames, not to the model) with two or
    more raw cameras and a core for each beside two for the node; never on the CPU, where
    inference takes every core and the frames wait for it anyway.
    """
    if requested not in CAMERA_RECEIVER_CHOICES:
        raise ValueError(
            f"camera_receivers must be one of {', '.join(CAMERA_RECEIVER_CHOICES)}, "
            f"got {requested!r}"
        )
    if requested == "processes":
        return raw_cameras > 0
    if requested == "executor":
        return False
    return (
        runs_on_gpu
        and raw_cameras >= 2
        and (cpu_count or 1) >= raw_cameras + _CORES_BESIDE_RECEIVERS
    )


class CameraReceiver:
    """One camera's receiver process and the thread handing its frames to ``on_message``.

    ``on_message(view, message_info)`` runs on that thread; ``view`` is valid only during the
    call: the handler must copy what it keeps (the node's decoders return new arrays), since
    the slot is written again once the call returns. ``on_publishers_changed()`` runs there
    when a camera publisher connects or leaves, and ``on_exit(receiver, reason)`` if the
    process ends before :meth:`stop`: the camera's frames no longer come this way.
    ``on_bad_frame(problem)`` reports a frame lost in the hand-over, ``log_error(problem)``
    anything else that goes wrong (both default to standard error).
    ``slots``: frames the process can hand over before the node is done with them. Three keep
    newest-frame-wins: with one frame being read and one waiting, a third still gets in (the
    node's batcher then keeps the newer of the two waiting); only a node three frames behind
    makes the process drop one.
    """

    def __init__(
        self,
        topic: str,
        node_name: str,
        namespace: str,
        qos: QosSettings,
        on_message: MessageHandler,
        on_exit: Callable[[CameraReceiver, str], None],
        *,
        on_publishers_changed: Callable[[], None] | None = None,
        on_bad_frame: Callable[[str], None] | None = None,
        log_error: Callable[[str], None] | None = None,
        domain_id: int | None = None,
        enclave: str | None = None,
        slots: int = 3,
    ) -> None:
        self.topic = topic
        self._command_options = [
            "--topic",
            topic,
            "--node-name",
            node_name,
            "--namespace",
            namespace,
            "--qos",
            json.dumps(dataclasses.asdict(qos)),
            "--slots",
            str(slots),
        ]
        if domain_id is not None:
            # The node's context may have been given its domain in code, not by ROS_DOMAIN_ID.
            self._command_options += ["--domain-id", str(domain_id)]
        if enclave is not None:
            # Under SROS2 a participant without the node's enclave is refused (Enforce) or left
            # unsecured; ROS_SECURITY_* variables reach the process by inheritance.
            self._command_options += ["--enclave", enclave]
        # Its files, by name: process ids repeat across containers sharing /dev/shm.
        self._file_prefix = unique_prefix()
        self._command_options += ["--prefix", self._file_prefix]
        self._on_message = on_message
        self._on_exit = on_exit
        self._on_publishers_changed = on_publishers_changed
        self._log_error = log_error or _print_error
        self._on_bad_frame = on_bad_frame or self._log_error
        self._cleaned_up = False
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._reader = SlotReader()
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        """The receiver process's id, once started."""
        return None if self._process is None else self._process.pid

    @property
    def file_prefix(self) -> str:
        """The name prefix of its slot files in shared memory (FILE_PREFIX included)."""
        return FILE_PREFIX + self._file_prefix

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Start the process and the thread reading its notices."""
        if self._process is not None:
            raise RuntimeError(f"the receiver of {self.topic} was started already")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "togethernet_ros.ros.camera_receiver_process",
                    "--socket-fd",
                    str(theirs.fileno()),
                    *self._command_options,
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # Out of the node's process group: a terminal's Ctrl+C, or a kill of the group,
                # reaches the node, which then stops its receivers itself.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = ours
        self._thread = threading.Thread(
            target=self._read_notices, name=f"receiver {self.topic}", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:
            self._thread = None
            self.request_stop()
            self._clean_up()  # the process must not outlive a receiver that never ran
            raise

    def request_stop(self) -> None:
        """Close the socket: the process exits (see :meth:`stop`)."""
        self._stopping.set()
        if self._connection is not None:
            # Already shut down, or the process closed its end first.
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the socket, wait for the process to exit, kill it if it does not."""
        self.request_stop()
        if self._process is not None:
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self._clean_up()

    def _clean_up(self) -> None:
        """Once: close the socket, reap the process, unmap and remove what it left."""
        if self._cleaned_up:
            return
        self._cleaned_up = True
        if self._connection is not None:
            self._connection.close()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()  # it closed its socket but did not exit
            self._process.wait()
        self._reader.close()
        try:
            remove_writer_files(self.file_prefix)  # left behind only by a killed process
        except OSError as error:
            self._log_error(f"camera receiver of {self.topic}: removing its slot files: {error}")

    def _read_notices(self) -> None:
        connection = self._connection
        assert connection is not None
        while True:
            try:
                data = connection.recv(_NOTICE_BUFFER)
            except OSError:
                data = b""
            if not data:
                break
            if data == PUBLISHERS_CHANGED:
                self._call(self._on_publishers_changed)
                continue
            try:
                notice = FrameNotice.decode(data)
            except ValueError as error:
                self._log_error(f"camera receiver of {self.topic}: {error}")
                continue
            self._hand_over(notice)
            try:
                connection.send(encode_release(notice.slot))
            except OSError:
                break
        if not self._stopping.is_set():
            reason = self._exit_reason()
            try:
                self._clean_up()
            finally:  # the camera must fall back whatever the clean-up met
                self._call(self._on_exit, self, reason)

    def _hand_over(self, notice: FrameNotice) -> None:
        """Call the handler with the frame; every failure is reported, none ends the thread."""
        try:
            view = self._reader.view(notice)
        except (OSError, ValueError) as error:
            self._on_bad_frame(f"camera receiver of {self.topic}: {error}; frame dropped")
            return
        try:
            self._on_message(view, notice.message_info)
        except Exception as error:  # the camera must go on with its next frame
            self._on_bad_frame(
                f"camera receiver of {self.topic}: handling a frame raised "
                f"{type(error).__name__}: {error}; frame dropped"
            )
        finally:
            view.release()

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as error:
            self._log_error(
                f"camera receiver of {self.topic}: {type(error).__name__} in "
                f"{getattr(callback, '__name__', 'a callback')}: {error}"
            )

    def _exit_reason(self) -> str:
        process = self._process
        if process is None:
            return "not started"
        try:
            return f"exited with code {process.wait(2.0)}"
        except subprocess.TimeoutExpired:
            return "closed its socket"


def _print_error(message: str) -> None:
    print(message, file=sys.stderr)


def describe_receiver(receiver: CameraReceiver | None, lost: bool = False) -> str:
    """How a camera's frames reach the node, for /diagnostics: ``lost`` when its receiver
    exited and the node could not subscribe in its place."""
    if lost:
        return "none (receiver exited)"
    if receiver is None:
        return "executor"
    return f"process {receiver.pid}"


def start_receivers(receivers: list[CameraReceiver]) -> None:
    """Start each receiver; stop those started if one fails, then re-raise.

    First removes the slot files of receivers killed together with their node.
    """
    with contextlib.suppress(OSError):  # a sweep that cannot list /dev/shm keeps nothing back
        remove_stale_writer_files()
    started: list[CameraReceiver] = []
    try:
        for receiver in receivers:
            receiver.start()
            started.append(receiver)
    except BaseException:
        stop_receivers(started)
        raise


def stop_receivers(receivers: list[CameraReceiver], timeout_s: float = 5.0) -> None:
    """Stop every receiver, their processes exiting at the same time; the first error is
    raised once every one has been stopped."""
    errors: list[Exception] = []
    for receiver in receivers:
        try:
            receiver.request_stop()
        except Exception as error:
            errors.append(error)
    for receiver in receivers:
        try:
            receiver.stop(timeout_s)
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]
