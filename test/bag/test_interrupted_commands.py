"""`togethernet` commands stopped by SIGTERM (timeout, systemd, launch) clean up as on Ctrl-C.

Real processes and signals: the command runs in a child Python, is signalled mid-run, and what
it leaves behind (child processes, output bags) is checked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.wait import wait_for

from togethernet_ros.bag.bag_reader import BagReader

REPO = Path(__file__).resolve().parents[2]
BLOB_NODE = Path(__file__).with_name("blob_node.py")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _start(tmp_path: Path, argv: list[str], prelude: str = "") -> subprocess.Popen:
    script = tmp_path / "run_cli.py"
    script.write_text(
        f"import sys\n{textwrap.dedent(prelude)}\n"
        f"from togethernet_ros.cli import main\nsys.exit(main({argv!r}))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-u", str(script)],
        cwd=REPO,
        # Where a killed command's temporary files (the replay's overlay) go: not /tmp.
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start_replay(camera_bag, tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    """`bag replay --record` playing (10 frames/s for 30 s); returns it, its node's pid, bag."""
    pytest.importorskip("rclpy", reason="rclpy not importable: the ROS 2 wheels are not installed")
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built in this environment")
    bag = camera_bag(frames=300, topics=(("/cam_front/image_raw", "sensor_msgs/msg/Image"),))
    record = tmp_path / "recorded"
    # The blob stand-in node: the real detector_node process, a detector that needs no weights.
    prelude = f"""
        import togethernet_ros.ros.replay_node_process as nodes
        nodes.detector_node_command = lambda: [sys.executable, {str(BLOB_NODE)!r}]
    """
    command = _start(
        tmp_path,
        ["bag", "replay", str(bag), "--record", str(record), "--report-dir", str(tmp_path / "r")],
        prelude,
    )
    try:
        for line in command.stdout:
            if "started detector_node (pid " in line:
                node_pid = int(line.split("(pid ", 1)[1].split(")", 1)[0])
                break
        else:
            raise AssertionError("the replay never started its node")
        wait_for(lambda: record.is_dir() and any(record.glob("*.mcap")), 60, "the recording")
        # Mid-run: frames sent (and put to the recording), as its progress bar says. A fixed
        # sleep raced the first frames on a loaded machine.
        for line in command.stdout:
            done = re.search(r"\b(\d+)/300\b", line)
            if done and int(done.group(1)) >= 10:
                break
        else:
            raise AssertionError("the replay ended before it sent 10 frames")
    except BaseException:
        command.kill()
        command.wait()
        raise
    return command, node_pid, record


def _end(command: subprocess.Popen, node_pid: int) -> None:
    if command.poll() is None:
        command.kill()
        command.wait()
    if _alive(node_pid):
        os.kill(node_pid, signal.SIGKILL)


@pytest.mark.ros
def test_sigterm_stops_the_replays_node_and_closes_its_recording(camera_bag, tmp_path):
    command, node_pid, record = _start_replay(camera_bag, tmp_path)
    try:
        command.send_signal(signal.SIGTERM)
        output = command.communicate(timeout=60)[0]
        # Was: the replay died on the spot; its node ran on, orphaned, holding DDS (and a GPU).
        wait_for(lambda: not _alive(node_pid), 60, "detector_node to stop (left running)")
        assert command.returncode == 128 + signal.SIGTERM, output
        assert "stopped by SIGTERM" in output
        # The recording was closed: metadata.yaml written, every message readable.
        assert (record / "metadata.yaml").exists()
        with BagReader(record) as reader:
            assert reader.image_message_count > 0
            assert not reader.problems.to_dicts()
    finally:
        _end(command, node_pid)


@pytest.mark.ros
def test_a_replay_killed_outright_takes_its_node_along(camera_bag, tmp_path):
    command, node_pid, record = _start_replay(camera_bag, tmp_path)
    try:
        command.kill()  # SIGKILL (the OOM killer, `timeout -s KILL`): no clean-up runs
        command.communicate(timeout=60)
        # Was: the node ran on, orphaned, for good.
        wait_for(lambda: not _alive(node_pid), 60, "detector_node to stop (left running)")
        # The torn recording is marked as such (no metadata.yaml; what the writer had flushed
        # is salvaged by BagReader), and a re-run is told why it is refused.
        assert not (record / "metadata.yaml").exists()
    finally:
        _end(command, node_pid)


def test_sigterm_closes_the_output_bag_of_bag_run(camera_bag, tmp_path):
    bag = camera_bag(frames=1000, topics=(("/cam_front/image_raw", "sensor_msgs/msg/Image"),))
    output = tmp_path / "out"
    command = _start(
        tmp_path,
        [
            *("bag", "run", str(bag), "--output", str(output), "--allow-untrained-weights"),
            *("--input-size", "128", "--device", "cpu", "--max-batch-size", "1"),
        ],
    )
    try:
        # Processing (the writer opened the bag and wrote the first frames).
        wait_for(
            lambda: (
                command.poll() is not None
                or any(p.stat().st_size > 100_000 for p in output.glob("*.mcap"))
            ),
            120,
            "the first frames in the output bag",
        )
        assert command.poll() is None, command.communicate(timeout=5)[0]
        command.send_signal(signal.SIGTERM)
        out = command.communicate(timeout=60)[0]
        # Was: killed mid-write, an mcap without its summary and no metadata.yaml.
        assert (output / "metadata.yaml").exists(), out
        assert command.returncode == 128 + signal.SIGTERM, out
        with BagReader(output) as reader:
            assert 0 < reader.image_message_count < 1000
            assert not reader.problems.to_dicts()
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()


def test_a_killed_runs_output_bag_is_refused_as_unfinished(camera_bag, tmp_path, capsys):
    from togethernet_ros.cli import main

    bag = camera_bag(frames=2)
    # What SIGKILL mid-run leaves: the bag folder, a torn mcap, no metadata.yaml.
    output = tmp_path / "out"
    output.mkdir()
    (output / "out.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 50)
    command = ["bag", "run", str(bag), "--output", str(output), "--allow-untrained-weights"]
    assert main(command) == 2
    error = capsys.readouterr().err
    # Was: "exists already (use --overwrite)", as if it were a finished earlier result.
    assert "unfinished (no metadata.yaml" in error and "--overwrite" in error
    replay = ["bag", "replay", str(bag), "--record", str(output)]
    assert main(replay) == 2
    assert "unfinished (no metadata.yaml" in capsys.readouterr().err


def test_a_full_disk_under_bag_run_is_one_line_not_a_traceback(camera_bag, tmp_path):
    bag = camera_bag(frames=60)
    output = tmp_path / "out"
    # The disk "fills" after 1 MiB: a real short write (EFBIG, as ENOSPC) in rosbags' writer.
    limit = 1 << 20
    prelude = f"""
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """
    command = _start(
        tmp_path,
        [
            *("bag", "run", str(bag), "--output", str(output), "--allow-untrained-weights"),
            *("--input-size", "128", "--device", "cpu"),
        ],
        prelude,
    )
    out = command.communicate(timeout=300)[0]
    assert command.returncode == 1, out
    # Was: two chained OSError tracebacks.
    assert "Traceback" not in out
    assert f"the output bag {output} is incomplete" in out and "File too large" in out
