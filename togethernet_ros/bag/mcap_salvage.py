"""Sequential reading of a torn mcap file (recorder killed, disk full): keep every whole record.

Readers that rely on the summary at the end of the file give up on such files, and a streaming
reader drops a half-written chunk entirely. This scanner walks the records from the start and,
for uncompressed chunks, also reads the complete records inside a chunk that is cut short.
Record layout: MCAP spec, https://mcap.dev/spec.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x03, 0x04, 0x05, 0x06


@dataclass
class SalvagedSchema:
    """An mcap Schema record."""

    id: int
    name: str
    encoding: str
    data: bytes


@dataclass
class SalvagedChannel:
    """An mcap Channel record (metadata not needed here)."""

    id: int
    schema_id: int
    topic: str


@dataclass
class SalvagedMessage:
    """An mcap Message record."""

    channel_id: int
    log_time: int
    data: bytes


@dataclass
class SalvageResult:
    """Where scanning stopped and why (empty ``stop_reason`` = reached the end cleanly)."""

    stop_offset: int = 0
    stop_reason: str = ""


def _string(buffer: memoryview, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<I", buffer, offset)
    end = offset + 4 + length
    if end > len(buffer):
        raise ValueError("string runs past the record")
    return bytes(buffer[offset + 4 : end]).decode(), end


def _parse(
    opcode: int, body: memoryview
) -> SalvagedSchema | SalvagedChannel | SalvagedMessage | None:
    if opcode == OP_SCHEMA:
        (schema_id,) = struct.unpack_from("<H", body, 0)
        name, offset = _string(body, 2)
        encoding, offset = _string(body, offset)
        (length,) = struct.unpack_from("<I", body, offset)
        return SalvagedSchema(
            schema_id, name, encoding, bytes(body[offset + 4 : offset + 4 + length])
        )
    if opcode == OP_CHANNEL:
        channel_id, schema_id = struct.unpack_from("<HH", body, 0)
        topic, _ = _string(body, 4)
        return SalvagedChannel(channel_id, schema_id, topic)
    if opcode == OP_MESSAGE:
        channel_id, _sequence, log_time, _publish_time = struct.unpack_from("<HIQQ", body, 0)
        return SalvagedMessage(channel_id, log_time, bytes(body[22:]))
    return None


def _decompress(compression: str, data: bytes, size: int) -> bytes:
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


def _records(buffer: memoryview, result: SalvageResult, base: int) -> Iterator[object]:
    offset = 0
    while offset < len(buffer):
        if offset + 9 > len(buffer):
            result.stop_offset, result.stop_reason = base + offset, "record header cut off"
            return
        opcode = buffer[offset]
        (length,) = struct.unpack_from("<Q", buffer, offset + 1)
        body_start = offset + 9
        body = buffer[body_start : body_start + length]
        if opcode == OP_CHUNK:
            yield from _chunk(body, length, result, base + body_start)
            if result.stop_reason:
                return
        elif len(body) < length:
            result.stop_offset, result.stop_reason = base + offset, "record cut off"
            return
        else:
            try:
                record = _parse(opcode, body)
            except (struct.error, ValueError):  # a body too short for its fields, bad UTF-8
                result.stop_offset = base + offset
                result.stop_reason = f"damaged record (opcode 0x{opcode:02x})"
                return
            if record is not None:
                yield record
        offset = body_start + length


def _chunk(body: memoryview, length: int, result: SalvageResult, base: int) -> Iterator[object]:
    # start time, end time, uncompressed size, crc, compression, then the u64-sized records.
    try:
        _start, _end, size, _crc = struct.unpack_from("<QQQI", body, 0)
        compression, offset = _string(body, 28)
        (records_length,) = struct.unpack_from("<Q", body, offset)
    except (struct.error, ValueError):
        result.stop_offset, result.stop_reason = base, "chunk header cut off"
        return
    records = body[offset + 8 : offset + 8 + records_length]
    complete = len(body) >= length
    if compression:
        if not complete:
            result.stop_offset, result.stop_reason = base, f"{compression} chunk cut off"
            return
        try:
            data = _decompress(compression, bytes(records), size)
        except Exception as error:  # zstandard and lz4 raise their own types for bad data
            result.stop_offset = base
            result.stop_reason = f"{compression} chunk damaged ({type(error).__name__}: {error})"
            return
        yield from _records(memoryview(data), result, base)
        return
    yield from _records(records, result, base + offset + 8)
    if not complete and not result.stop_reason:
        result.stop_offset, result.stop_reason = base + len(body), "chunk cut off"


def salvage_mcap(path: Path, result: SalvageResult) -> Iterator[object]:
    """Yield SalvagedSchema / SalvagedChannel / SalvagedMessage records of ``path`` in file order.

    ``result`` is filled with where and why the scan stopped. Raises ValueError if ``path`` is
    not an mcap file at all.
    """
    with path.open("rb") as stream:
        if stream.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not an mcap file (bad magic)")
        # mmap: bags are often larger than memory; records are copied out one by one.
        mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    end = len(view)
    if bytes(view[-len(MAGIC) :]) == MAGIC and end > 2 * len(MAGIC):
        end -= len(MAGIC)
    try:
        yield from _records(view[len(MAGIC) : end], result, len(MAGIC))
    finally:
        view.release()
        with contextlib.suppress(BufferError):
            mapped.close()
