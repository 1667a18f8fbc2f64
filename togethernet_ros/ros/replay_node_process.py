"""The real detector_node as a child process, with its own parameter overlay and log file."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from togethernet_ros.ros.params_file import ParamsFileError, dump_params_file, read_sections

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Section names matching any node. rcl merges sections in the order each name first appears,
# so the overlay must use one the params file does not: `/**` after a file's `/**:` and
# `detector:` sections joined the file's `/**` and lost to its `detector:` values.
OVERLAY_SECTIONS = ("/**", "/**/*", "/*/**", "/**/**")


def overlay_section(params_file: Path | None) -> str:
    """The section of the replay's overlay file: one matching any node that ``params_file``
    does not name (the first of OVERLAY_SECTIONS, else ``/**/**/**``, ``/**/**/**/**``, ...).
    """
    if params_file is None:
        return OVERLAY_SECTIONS[0]
    try:
        used = read_sections([params_file]).sections
    except ParamsFileError:
        # rcl may still start with a file we cannot read (a trailing `name: {}`), so its
        # sections are unknown here: take a match-all name no real file uses.
        return "/**" * 8
    unused = next((name for name in OVERLAY_SECTIONS if name not in used), None)
    if unused is not None:
        return unused
    # A name the file uses would join that section's place and lose to the file's later
    # sections without a word; `/**` repeated matches any node too, and one is always free.
    repeats = 3
    while "/**" * repeats in used:
        repeats += 1
    return "/**" * repeats


def detector_node_command() -> list[str]:
    """The `detector_node` console script next to this Python, else ``python -m`` the module."""
    script = Path(sys.executable).parent / "detector_node"
    if script.is_file():
        return [str(script)]
    found = shutil.which("detector_node")
    if found:
        return [found]
    return [sys.executable, "-m", "togethernet_ros.ros.detector_node"]


def _stop_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when this process dies.

    A replay killed outright (SIGKILL, the OOM killer) runs no clean-up: without this its
    node ran on, orphaned, holding DDS and GPU memory. SIGTERM stops the node cleanly. The
    signal follows the thread that started the child, so start it from one that lasts (the
    main thread). None where prctl is not available.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # died before the line above: nobody would stop us
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


class NodeProcess:
    """Start with :meth:`start`, stop with :meth:`stop` (SIGINT, then SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        params_file: Path | None,
        overrides: dict[str, Any],
        env: dict[str, str],
        log_path: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="togethernet_replay_"))
        self.overlay_path = self._workdir / "replay_overrides.yaml"
        # Matches the node whatever its name or namespace, in a section placed after the params
        # file's (see OVERLAY_SECTIONS); strings quoted, as rcl would read a bare 1e-3 as a number.
        self.overlay_path.write_text(dump_params_file({overlay_section(params_file): overrides}))
        self.log_path = log_path or self._workdir / "detector_node.log"
        arguments = ["--ros-args"]
        if params_file is not None:
            arguments += ["--params-file", str(params_file)]
        arguments += ["--params-file", str(self.overlay_path)]
        self.command = (command or detector_node_command()) + arguments
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int:
        """Process id (after start)."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Launch the node; output goes to :attr:`log_path`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_this_process(),
        )

    def exited(self) -> int | None:
        """Exit code if the process ended, else None."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the node's log."""
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Stop the node like Ctrl-C would; escalate if it does not exit."""
        if self.process is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s if sig != signal.SIGKILL else None)
            except subprocess.TimeoutExpired:
                continue
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def cleanup(self) -> None:
        """Remove the overlay directory (and the log unless it was placed elsewhere)."""
        shutil.rmtree(self._workdir, ignore_errors=True)
