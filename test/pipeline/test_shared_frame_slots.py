"""Shared-memory slots between a camera receiver process and the node (no ROS)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from togethernet_ros.pipeline.shared_frame_slots import (
    FILE_PREFIX,
    FrameNotice,
    SlotReader,
    SlotWriter,
    decode_release,
    encode_release,
    remove_stale_writer_files,
    remove_writer_files,
    shared_memory_dir,
)


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith(FILE_PREFIX))


def test_a_written_message_reads_back_in_place_byte_for_byte(tmp_path):
    writer, reader = SlotWriter(2, tmp_path, "t"), SlotReader()
    payload = np.random.default_rng(0).integers(0, 256, 2_764_854, dtype=np.uint8).tobytes()
    info = {"source_timestamp": 5, "received_timestamp": 7, "publication_sequence_number": 3}
    notice = writer.write(payload, info)
    assert notice is not None and notice.length == len(payload)
    # The notice crosses the socket as bytes.
    notice = FrameNotice.decode(notice.encode())
    assert notice.message_info == info
    view = reader.view(notice)
    assert view.readonly and bytes(view) == payload
    view.release()
    reader.close()
    writer.close()


def test_slots_are_reused_only_once_released_and_a_full_writer_refuses(tmp_path):
    writer = SlotWriter(2, tmp_path, "t")
    first, second = writer.write(b"a" * 100), writer.write(b"b" * 100)
    assert {first.slot, second.slot} == {0, 1} and writer.free_slots == 0
    assert writer.write(b"c" * 100) is None  # dropped: the node still holds both
    writer.release(first.slot)
    third = writer.write(b"c" * 100)
    assert third.slot == first.slot and third.path == first.path  # same file, no reallocation
    with pytest.raises(ValueError, match="no slot 5"):
        writer.release(5)
    writer.close()


def test_a_larger_message_moves_its_slot_to_a_new_file_and_removes_the_old(tmp_path):
    writer, reader = SlotWriter(1, tmp_path, "t"), SlotReader()
    small = writer.write(b"x" * 1000)
    view = reader.view(small)
    assert bytes(view) == b"x" * 1000
    view.release()
    writer.release(small.slot)
    large = writer.write(b"y" * 5_000_000)
    assert large.path != small.path
    assert _files(tmp_path) == [Path(large.path).name]  # the old file is gone
    view = reader.view(large)  # the reader follows the slot to its new file
    assert len(view) == 5_000_000 and view[-1] == ord("y")
    view.release()
    reader.close()
    writer.close()
    assert _files(tmp_path) == []


def test_a_mapping_still_viewed_is_closed_once_its_view_is_released(tmp_path):
    writer, reader = SlotWriter(1, tmp_path, "t"), SlotReader()
    kept = reader.view(writer.write(b"k" * 100))
    writer.release(0)
    # The slot moves to a bigger file while a view of the old mapping is alive: no BufferError.
    reader.view(writer.write(b"m" * 200_000)).release()
    assert bytes(kept[:3]) == b"kkk"  # still readable: it was not unmapped under the view
    assert len(reader._retired) == 1
    kept.release()
    reader.close()
    assert reader._retired == []  # closed once nothing viewed it
    writer.close()


def test_a_killed_writers_files_are_removed_by_its_prefix(tmp_path):
    writer = SlotWriter(2, tmp_path, "t")
    reader = SlotReader()
    for _ in range(2):
        reader.view(writer.write(b"z" * 10)).release()
    assert len(_files(tmp_path)) == 2
    # A writer killed before its close leaves its files: the node removes them by name.
    reader.close()
    remove_writer_files(writer.prefix, tmp_path)
    assert _files(tmp_path) == []


def test_a_notice_for_a_missing_file_or_beyond_its_size_is_an_error(tmp_path):
    writer, reader = SlotWriter(1, tmp_path, "t"), SlotReader()
    notice = writer.write(b"q" * 10)
    with pytest.raises(ValueError, match="holds"):
        reader.view(FrameNotice(notice.slot, notice.path, 10_000_000))
    with pytest.raises(OSError):
        reader.view(FrameNotice(1, str(tmp_path / "gone"), 10))
    writer.close()


@pytest.mark.parametrize(
    "datagram", [b"", b"{", b'{"slot": 0}', b'{"slot": -1, "path": "p", "length": 3}', b"[1]"]
)
def test_malformed_notices_are_refused_by_name(datagram):
    with pytest.raises(ValueError, match="frame notice"):
        FrameNotice.decode(datagram)


def test_releases_round_trip_and_garbage_is_refused():
    assert decode_release(encode_release(3)) == 3
    with pytest.raises(ValueError, match="malformed slot release"):
        decode_release(b"three")


def test_slots_live_in_memory_where_the_machine_has_dev_shm():
    directory = shared_memory_dir()
    assert directory.is_dir() and os.access(directory, os.W_OK)
    if Path("/dev/shm").is_dir():
        assert directory == Path("/dev/shm")


def test_a_writer_needs_a_slot():
    with pytest.raises(ValueError, match="at least 1"):
        SlotWriter(0)


def test_a_full_shared_memory_is_an_error_when_the_slot_is_made_not_a_crash_later(
    tmp_path, monkeypatch
):
    import errno

    def no_space(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    writer = SlotWriter(1, tmp_path, "t")
    with pytest.raises(OSError, match="No space"):
        writer.write(b"f" * 1000)
    assert _files(tmp_path) == []  # the half-made file is removed
    assert writer.free_slots == 1


def test_slot_files_no_live_writer_holds_are_swept_and_live_ones_kept(tmp_path):
    live = SlotWriter(2, tmp_path, "live")
    live.write(b"x" * 100)  # both slots made, each locked by the writer
    stale = tmp_path / f"{FILE_PREFIX}123-dead_0_0"  # a killed writer's: nobody locks it
    young = tmp_path / f"{FILE_PREFIX}456-new_0_0"  # just made: its writer may lock it next
    stale.write_bytes(b"x")
    young.write_bytes(b"x")
    os.utime(stale, (0, 0))
    for path in live.paths():
        os.utime(path, (0, 0))  # old as well: only the lock keeps them
    assert remove_stale_writer_files(tmp_path) == [stale]
    assert young.exists() and all(path.exists() for path in live.paths())
    live.close()
    assert _files(tmp_path) == [young.name]


def test_every_free_slot_is_reserved_with_the_first_frame(tmp_path):
    writer = SlotWriter(3, tmp_path, "r")
    writer.write(b"f" * 300_000)
    assert len(_files(tmp_path)) == 3  # a /dev/shm too small for all three fails now
    writer.close()


def test_frames_decoded_from_a_slot_own_their_pixels(tmp_path):
    """The node hands the slot back once its handler returns: every decoder must copy."""
    from rosbags.typesys.stores import ros2_jazzy

    from togethernet_ros.bag.image_codec import decode_image_message
    from togethernet_ros.bag.vision_msgs_definitions import create_typestore
    from togethernet_ros.ros.serialized_images import SerializedImageReader

    typestore = create_typestore()
    rng = np.random.default_rng(4)
    cases = {
        "bgr8": rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        "rgb8": rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        "mono8": rng.integers(0, 256, (6, 8), dtype=np.uint8),
        "bgra8": rng.integers(0, 256, (6, 8, 4), dtype=np.uint8),
        "mono16": rng.integers(0, 4096, (6, 8), dtype=np.uint16),
        "bayer_rggb8": rng.integers(0, 256, (6, 8), dtype=np.uint8),
        "nv12": rng.integers(0, 256, (9, 8), dtype=np.uint8),
    }
    writer, reader, image_reader = (
        SlotWriter(1, tmp_path, "d"),
        SlotReader(),
        SerializedImageReader(),
    )
    for encoding, pixels in cases.items():
        height = 6
        message = ros2_jazzy.sensor_msgs__msg__Image(
            header=ros2_jazzy.std_msgs__msg__Header(
                stamp=ros2_jazzy.builtin_interfaces__msg__Time(sec=1, nanosec=2), frame_id="f"
            ),
            height=height,
            width=8,
            encoding=encoding,
            is_bigendian=0,
            step=pixels.strides[0],
            data=np.frombuffer(pixels.tobytes(), np.uint8),
        )
        notice = writer.write(bytes(typestore.serialize_cdr(message, message.__msgtype__)))
        view = reader.view(notice)
        image = decode_image_message(image_reader.read(view, compressed=False))
        slot = np.frombuffer(view, np.uint8)
        assert image.flags.writeable and not np.shares_memory(image, slot), encoding
        del slot
        view.release()
        writer.release(notice.slot)
    reader.close()
    writer.close()
