"""A `togethernet` command signalled while it writes its second checkpoint (train, distill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from support.wait import wait_for

# Holds the command inside its second torch.save (epoch 2's last.pt: written, not yet renamed
# into place) and touches the marker file argv[1] so the test knows when to signal it.
_PAUSE_IN_SECOND_SAVE = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    import torch

    # Ctrl-C as in a terminal, also when the suite runs as a background job (`make test &`,
    # nohup): shells start those with SIGINT ignored, children inherit it, and Python then
    # leaves SIGINT ignored, so the stop this test sends would never arrive.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    marker = Path(sys.argv[1])
    real_save, saves = torch.save, []

    def slow_save(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            handle.flush()
            marker.touch()
            time.sleep(120)

    torch.save = slow_save
    """
)
_RUN_CLI = textwrap.dedent(
    """
    from togethernet_ros.cli import main

    sys.exit(main(sys.argv[2:]))
    """
)


def stop_during_second_save(
    tmp_path: Path, argv: list[str], signum: int = signal.SIGTERM, setup: str = ""
) -> tuple[int, str]:
    """Run ``togethernet argv`` in a child, send ``signum`` inside its second checkpoint save.

    ``setup`` is Python run in the child before the command (stand-ins for what the test does
    not need). Returns the child's exit status and its stderr.
    """
    script, marker = tmp_path / "stopped_run.py", tmp_path / "saving"
    script.write_text(_PAUSE_IN_SECOND_SAVE + textwrap.dedent(setup) + _RUN_CLI)
    process = subprocess.Popen(
        [sys.executable, str(script), str(marker), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, 180, "the second save")
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr
