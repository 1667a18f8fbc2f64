"""A sqlite3 output bag whose writer is killed keeps what was committed before the kill."""

from __future__ import annotations

import signal
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


def test_a_killed_writer_leaves_the_committed_messages_readable(tmp_path):
    bag = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(bag)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("50 written"), line
        # Past two commit intervals after the first 50 messages: at least those are committed.
        time.sleep(2.5 * SQLITE_COMMIT_INTERVAL_S)
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
