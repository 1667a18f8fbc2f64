"""Camera messages handed from one process to another through a few shared-memory slots.

A camera receiver process (ros/camera_receiver_process.py) takes each message of its camera
from DDS, copies its bytes into a free slot (a file in ``/dev/shm`` mapped by both processes)
and sends the node a :class:`FrameNotice` naming the slot; the node reads the bytes in place,
copies out what it keeps, and hands the slot back. Only that short notice crosses the socket,
so the node's process spends no time under the GIL copying 2.7 MB out of DDS per 720p frame,
and four cameras' messages are taken from DDS on four cores at once.

Plain Python (no rclpy): both ends are unit-tested without ROS.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import mmap
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_PREFIX = "togethernet_frames_"
# A slot grows to the message's size plus this share, so a frame_id or encoding that grows by
# a few bytes does not reallocate it on the next frame.
_HEADROOM_DIVISOR = 8
_MIN_CAPACITY = 64 * 1024
_SEQUENCE = itertools.count()
# The sweep leaves younger files alone: a writer locks its file just after creating it.
_STALE_AFTER_S = 10.0


def unique_prefix() -> str:
    """A file-name prefix no other writer uses, also one in another PID namespace sharing
    ``/dev/shm`` (containers of one pod): the process id alone repeats there."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def shared_memory_dir() -> Path:
    """Where slots live: ``/dev/shm`` (memory, never written to disk) where there is one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


@dataclass(frozen=True)
class FrameNotice:
    """A message waiting in slot ``slot`` (the file ``path``), ``length`` bytes long."""

    slot: int
    path: str
    length: int
    message_info: dict[str, int | None] | None = None
    """What the middleware said about the message (rclpy's message info), passed through."""

    def encode(self) -> bytes:
        """The notice as one datagram."""
        return json.dumps(
            {"slot": self.slot, "path": self.path, "length": self.length, "info": self.message_info}
        ).encode()

    @staticmethod
    def decode(data: bytes) -> FrameNotice:
        """A notice from :meth:`encode`'s bytes; ValueError saying what is wrong otherwise."""
        try:
            fields = json.loads(data)
            notice = FrameNotice(
                slot=int(fields["slot"]),
                path=str(fields["path"]),
                length=int(fields["length"]),
                message_info=fields.get("info"),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"malformed frame notice {data[:80]!r}: {error}") from error
        if notice.slot < 0 or notice.length < 0:
            raise ValueError(f"frame notice with a negative slot or length: {data[:80]!r}")
        return notice


# The receiver's notice that a camera publisher connected or left (no frame with it).
PUBLISHERS_CHANGED = b'{"publishers_changed": true}'


def encode_release(slot: int) -> bytes:
    """The datagram that hands ``slot`` back to the writer."""
    return str(slot).encode()


def decode_release(data: bytes) -> int:
    """The slot a release datagram hands back; ValueError if it names none."""
    try:
        return int(data)
    except ValueError as error:
        raise ValueError(f"malformed slot release {data[:40]!r}") from error


class _Slot:
    def __init__(self) -> None:
        self.path: Path | None = None
        self.memory: mmap.mmap | None = None
        # Held open with an exclusive lock while the file is ours: the sweep of stale files
        # (remove_stale_writer_files) tells a live writer's file from a dead one's by it.
        self.descriptor: int | None = None
        self.in_use = False

    @property
    def capacity(self) -> int:
        return 0 if self.memory is None else len(self.memory)


class SlotWriter:
    """The receiving process's end: ``slots`` slots, each used again once released.

    Files are named ``<FILE_PREFIX><prefix>_<slot>_<n>`` in ``directory`` (default
    :func:`shared_memory_dir`; ``prefix`` default :func:`unique_prefix`); :meth:`close`
    removes them.
    """

    def __init__(self, slots: int = 2, directory: Path | None = None, prefix: str = "") -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self._directory = shared_memory_dir() if directory is None else Path(directory)
        self._prefix = f"{FILE_PREFIX}{prefix or unique_prefix()}"
        self._slots = [_Slot() for _ in range(slots)]

    def write(
        self, data: Any, message_info: dict[str, int | None] | None = None
    ) -> FrameNotice | None:
        """Copy ``data`` (bytes-like) into a free slot; None when every slot is in use."""
        slot_index = next((i for i, slot in enumerate(self._slots) if not slot.in_use), None)
        if slot_index is None:
            return None
        slot = self._slots[slot_index]
        length = len(data)
        if slot.capacity < length or slot.memory is None:
            # Every free slot at once: a /dev/shm too small for them all then shows at the
            # first frame, not hours later when the reader first falls behind.
            for index, other in enumerate(self._slots):
                if not other.in_use and (other.capacity < length or other.memory is None):
                    self._grow(other, index, length)
        assert slot.memory is not None and slot.path is not None
        slot.memory[:length] = data
        slot.in_use = True
        return FrameNotice(slot_index, str(slot.path), length, message_info)

    def release(self, slot: int) -> None:
        """The reader is done with ``slot``: it may be written again. ValueError if unknown."""
        if not 0 <= slot < len(self._slots):
            raise ValueError(f"no slot {slot} (there are {len(self._slots)})")
        self._slots[slot].in_use = False

    @property
    def directory(self) -> Path:
        """Where the slots' files are."""
        return self._directory

    @property
    def free_slots(self) -> int:
        """Slots not waiting for the reader."""
        return sum(not slot.in_use for slot in self._slots)

    def paths(self) -> list[Path]:
        """The slots' current files."""
        return [slot.path for slot in self._slots if slot.path is not None]

    def close(self) -> None:
        """Unmap and remove every slot's file (a reader's mapping stays valid until it unmaps)."""
        for slot in self._slots:
            self._drop_file(slot)

    def _grow(self, slot: _Slot, index: int, length: int) -> None:
        # A new file rather than a resized one: the reader may still map the old one (it is
        # released only once the reader is done, but its mapping outlives the release).
        self._drop_file(slot)
        capacity = max(_MIN_CAPACITY, length + length // _HEADROOM_DIVISOR)
        capacity = -(-capacity // mmap.PAGESIZE) * mmap.PAGESIZE
        path = self._directory / f"{self._prefix}_{index}_{next(_SEQUENCE)}"
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if hasattr(os, "posix_fallocate"):
                # Reserve the memory now: a full /dev/shm (a container's is 64 MB by default)
                # then fails here with ENOSPC, not later with SIGBUS while writing a frame.
                os.posix_fallocate(descriptor, 0, capacity)
            else:
                os.ftruncate(descriptor, capacity)
            slot.memory = mmap.mmap(descriptor, capacity)
        except BaseException:
            path.unlink(missing_ok=True)
            os.close(descriptor)
            raise
        slot.path, slot.descriptor = path, descriptor

    @staticmethod
    def _drop_file(slot: _Slot) -> None:
        if slot.memory is not None:
            slot.memory.close()
            slot.memory = None
        if slot.path is not None:
            slot.path.unlink(missing_ok=True)
            slot.path = None
        if slot.descriptor is not None:
            os.close(slot.descriptor)  # releases the lock
            slot.descriptor = None

    @property
    def prefix(self) -> str:
        """The file-name prefix of every slot file (FILE_PREFIX included)."""
        return self._prefix


def remove_writer_files(prefix: str, directory: Path | None = None) -> None:
    """Remove a writer's files by its exact ``prefix`` (FILE_PREFIX included): what one killed
    before its clean-up left behind."""
    directory = shared_memory_dir() if directory is None else Path(directory)
    for path in directory.glob(f"{prefix}_*"):
        path.unlink(missing_ok=True)


def remove_stale_writer_files(directory: Path | None = None) -> list[Path]:
    """Remove slot files no live writer holds (a node killed together with its receivers);
    returns them. A writer keeps an exclusive lock on each of its files, so one that can be
    locked here belongs to nobody, whatever process ids say (which repeat across PID
    namespaces). Files just created, and those this user may not remove, are left alone."""
    directory = shared_memory_dir() if directory is None else Path(directory)
    removed = []
    for path in directory.glob(f"{FILE_PREFIX}*"):
        try:
            if time.time() - path.stat().st_mtime < _STALE_AFTER_S:
                continue
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:  # gone meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        finally:
            os.close(descriptor)
        try:
            path.unlink()
        except OSError:  # another user's file in the sticky /dev/shm, or gone meanwhile
            continue
        removed.append(path)
    return removed


class SlotReader:
    """The node's end: maps each slot's file once and reads notices' bytes in place."""

    def __init__(self) -> None:
        self._mapped: dict[int, tuple[str, mmap.mmap]] = {}
        self._retired: list[mmap.mmap] = []

    def view(self, notice: FrameNotice) -> memoryview:
        """The notice's bytes, read-only, until the caller releases the view.

        OSError when the file is gone (its writer died) and ValueError when the notice says
        more bytes than the file holds.
        """
        mapped = self._mapped.get(notice.slot)
        if mapped is None or mapped[0] != notice.path:
            if mapped is not None:
                self._retire(mapped[1])
            with open(notice.path, "rb") as file:
                memory = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            self._mapped[notice.slot] = mapped = (notice.path, memory)
        memory = mapped[1]
        if notice.length > len(memory):
            raise ValueError(
                f"frame notice of {notice.length} bytes for slot {notice.slot}, whose file "
                f"holds {len(memory)}"
            )
        return memoryview(memory)[: notice.length]

    def close(self) -> None:
        """Unmap everything; mappings still viewed somewhere are left to the garbage collector."""
        for _, memory in self._mapped.values():
            self._retire(memory)
        self._mapped.clear()

    def _retire(self, memory: mmap.mmap) -> None:
        self._retired.append(memory)
        still_viewed = []
        for retired in self._retired:
            try:
                retired.close()
            except BufferError:  # a view of it is alive: try again next time
                still_viewed.append(retired)
        self._retired = still_viewed
