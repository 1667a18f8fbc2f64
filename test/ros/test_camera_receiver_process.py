"""The receiver process's hand-off, without DDS: slots, notices, releases and failures."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest
from support.wait import wait_for

from togethernet_ros.pipeline.shared_frame_slots import (
    FrameNotice,
    SlotReader,
    SlotWriter,
    encode_release,
)
from togethernet_ros.ros.camera_receiver_process import _Handoff
from togethernet_ros.ros.camera_receivers import use_receiver_processes


@pytest.fixture
def handoff(tmp_path):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    writer = SlotWriter(2, tmp_path, "h")
    yield _Handoff(theirs, writer), ours, writer
    ours.close()
    theirs.close()
    writer.close()


def test_frames_are_noticed_and_a_third_waits_for_a_released_slot(handoff):
    receiver, node_end, writer = handoff
    info = {"publication_sequence_number": 7, "received_timestamp": 2, "source_timestamp": 1}
    releases = threading.Thread(target=receiver.read_releases)
    releases.start()
    receiver.on_message(b"one", info)
    receiver.on_message(b"two", None)
    first = FrameNotice.decode(node_end.recv(4096))
    second = FrameNotice.decode(node_end.recv(4096))
    reader = SlotReader()
    assert bytes(reader.view(first)) == b"one" and first.message_info == info
    assert bytes(reader.view(second)) == b"two"
    receiver.on_message(b"three", None)  # both slots with the node: dropped here
    node_end.setblocking(False)
    with pytest.raises(BlockingIOError):
        node_end.recv(4096)
    node_end.setblocking(True)
    node_end.send(encode_release(first.slot))
    # The release thread frees the slot; the next frame goes into it.
    wait_for(lambda: writer.free_slots == 1, 5.0, "the released slot")
    receiver.on_message(b"four", None)
    assert FrameNotice.decode(node_end.recv(4096)).slot == first.slot
    node_end.shutdown(socket.SHUT_RDWR)  # the node goes away: the receiver stops
    releases.join(5)
    assert receiver.closed.is_set() and receiver.failure is None
    reader.close()


def test_a_frame_that_cannot_be_held_in_shared_memory_ends_the_receiver_with_a_reason(
    handoff, monkeypatch
):
    receiver, _node_end, writer = handoff

    def no_space(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    receiver.on_message(b"x" * 5000, None)
    assert receiver.closed.is_set()
    assert "5000-byte frame" in receiver.failure and str(writer.directory) in receiver.failure


@pytest.mark.parametrize(
    ("requested", "raw_cameras", "gpu", "cpus", "expected"),
    [
        ("processes", 1, False, 2, True),
        ("processes", 0, True, 16, False),  # compressed cameras only: nothing to receive
        ("executor", 4, True, 16, False),
        ("auto", 4, True, 16, True),
        ("auto", 4, True, 5, False),  # no core per camera beside the node's two
        ("auto", 1, True, 16, False),
        ("auto", 4, False, 64, False),  # on the CPU the model, not the take, is the bottleneck
    ],
)
def test_when_raw_cameras_get_receiver_processes(requested, raw_cameras, gpu, cpus, expected):
    assert use_receiver_processes(requested, raw_cameras, gpu, cpus) is expected


def test_an_unknown_camera_receivers_value_is_refused_by_name():
    with pytest.raises(ValueError, match="camera_receivers must be one of"):
        use_receiver_processes("threads", 2, True, 8)


def test_a_receiver_process_loads_neither_torch_nor_the_model():
    """One runs per camera: each would otherwise carry ~200 MiB of torch it never uses."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, togethernet_ros.ros.camera_receiver_process; "
            "print(sorted(m for m in ('torch', 'togethernet_ros.model', 'cv2') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
