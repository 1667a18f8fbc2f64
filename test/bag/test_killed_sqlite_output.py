"""A sqlite3 output bag whose writer is killed keeps what was committed before the kill."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_writer import SQLITE_COMMIT_INTERVAL_S

WRITER = textwrap.dedent(
    """
    import sys, time
    from togethernet_ros.bag.bag_writer import BagWriter

    writer = BagWriter(sys.argv[1], storage="sqlite3").open()
    message_type = writer.typestore.types["std_msgs/msg/String"]
    started, count = time.monotonic(), 0
    while True:
        writer.write("/notes", "std_msgs/msg/String", 1_000 + count, message_type(data=str(count)))
        count += 1
        if count == 50:
            print("50 written", time.monotonic() - started, flush=True)
        time.sleep(0.005)
    """
)


def _committed_rows(bag) -> int:
    """Messages a reader of the bag's sqlite3 file sees now (0 before it has its table)."""
    files = list(bag.glob("*.db3"))
    if not files:
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True)) as db:
            return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return 0


def test_a_killed_writer_leaves_the_committed_messages_readable(tmp_path):
    bag = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(bag)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("50 written"), line
        # Until another connection sees the first 50 rows committed (every commit interval,
        # not only at close, where a killed writer never gets).
        deadline = time.monotonic() + 30 * SQLITE_COMMIT_INTERVAL_S
        while _committed_rows(bag) < 50:
            assert time.monotonic() < deadline, "the writer committed nothing while running"
            time.sleep(SQLITE_COMMIT_INTERVAL_S / 10)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process.stdout.close()
    assert not (bag / "metadata.yaml").exists()  # killed: never closed
    with BagReader(bag, require_images=False) as reader:
        data = [
            reader.typestore.deserialize_cdr(record.raw, record.topic.msgtype).data
            for record in reader.records(["/notes"])
        ]
        kinds = [problem["kind"] for problem in reader.problems.to_dicts()]
    assert len(data) >= 50
    assert data == [str(index) for index in range(len(data))]  # in order, none missing
    assert "no_metadata" in kinds
