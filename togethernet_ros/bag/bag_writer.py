"""Write rosbag2 bags (mcap by default, sqlite3 on request) with rosbags."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagTopic
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# rosbags commits a sqlite3 bag once, when it is closed: a run killed before (SIGKILL, the OOM
# killer, power loss) would leave an empty database. Committing this often keeps all but the
# last moments, as an mcap bag keeps its written chunks.
SQLITE_COMMIT_INTERVAL_S = 1.0


def check_output_apart_from_input(
    input_path: str | Path,
    output_path: str | Path,
    option: str = "--output",
    what: str = "input bag",
) -> None:
    """Raise BagError when an output bag would replace, contain or sit inside the input.

    Writing a bag removes what is at its path first (``--overwrite``), so an output at, or
    above, the input would delete the recording being read.
    """
    source = Path(input_path).resolve()
    target = Path(output_path).resolve()
    # A bag given as its .mcap/.db3 file is still the whole folder around it.
    source_bag = (
        source.parent if source.is_file() and (source.parent / "metadata.yaml").exists() else source
    )
    if target in (source, source_bag) or target in source.parents:
        raise BagError(
            f"{option} {output_path} would replace the {what} {input_path}; "
            "choose another output path"
        )
    if source_bag.is_dir() and source_bag in target.parents:
        raise BagError(
            f"{option} {output_path} is inside the {what} {input_path}; choose a path outside it"
        )


def exists_already(path: str | Path, option: str = "output bag") -> str:
    """The refusal for an output bag that exists, saying when it is an unfinished one.

    A run killed mid-write (SIGKILL, power loss) leaves a bag folder without metadata.yaml;
    "exists already" alone reads like a finished earlier result.
    """
    path = Path(path)
    unfinished = path.is_dir() and not (path / "metadata.yaml").exists()
    state = " and is unfinished (no metadata.yaml: a run that was killed?)" if unfinished else ""
    return f"{option} {path} exists already{state} (use --overwrite)"


class BagWriter:
    """A rosbag2 output bag; topics are added on first use. Use as a context manager."""

    def __init__(
        self,
        path: str | Path,
        storage: str = "mcap",
        typestore: Typestore | None = None,
        overwrite: bool = False,
    ) -> None:
        if storage not in STORAGE_PLUGINS:
            raise ValueError(f"storage must be one of {sorted(STORAGE_PLUGINS)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(exists_already(self.path))
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        self.storage = storage
        self.typestore = typestore or create_typestore()
        self._writer = Writer(
            self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGE_PLUGINS[storage]
        )
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._next_commit = time.monotonic() + SQLITE_COMMIT_INTERVAL_S

    def open(self) -> BagWriter:
        """Create the bag directory."""
        self._writer.open()
        return self

    def _commit_now_and_then(self) -> None:
        """sqlite3 only: commit what was written, at most every SQLITE_COMMIT_INTERVAL_S."""
        if self.storage != "sqlite3" or time.monotonic() < self._next_commit:
            return
        self._next_commit = time.monotonic() + SQLITE_COMMIT_INTERVAL_S
        # rosbags' Sqlite3Writer keeps its connection as `storage.conn` (pinned version; a
        # test kills a writer to check that the committed part survives).
        self._writer.storage.conn.commit()

    def close(self) -> None:
        """Finish the bag (writes the mcap summary / metadata.yaml)."""
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a string in the bag's metadata.yaml custom_data (rosbag2 ≥ Iron)."""
        self._writer.set_custom_data(key, value)

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` already has a connection."""
        return topic in self._connections

    def copy_topic(self, source: BagTopic) -> bool:
        """Add a connection identical to an input topic; False if its type cannot be described."""
        if source.topic in self._connections:
            return True
        if source.msgdef and source.digest:
            connection = self._writer.add_connection(
                source.topic,
                source.msgtype,
                msgdef=source.msgdef,
                rihs01=source.digest,
                offered_qos_profiles=list(source.qos),
            )
        elif source.msgtype in self.typestore.fielddefs:
            connection = self._writer.add_connection(
                source.topic,
                source.msgtype,
                typestore=self.typestore,
                offered_qos_profiles=list(source.qos),
            )
        else:
            return False
        self._connections[source.topic] = connection
        self.counts[source.topic] = 0
        return True

    def write_raw(self, topic: str, log_time_ns: int, raw: bytes | memoryview) -> None:
        """Write already-serialized CDR bytes to a topic added before."""
        self._writer.write(self._connections[topic], log_time_ns, raw)
        self.counts[topic] += 1
        self._commit_now_and_then()

    def write(self, topic: str, msgtype: str, log_time_ns: int, message: Any) -> None:
        """Serialize ``message`` and write it, adding the topic with ``msgtype`` when new."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore
            )
            self.counts[topic] = 0
        self.write_raw(topic, log_time_ns, self.typestore.serialize_cdr(message, msgtype))
