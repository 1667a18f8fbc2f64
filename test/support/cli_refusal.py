"""Running `togethernet` expecting it to refuse its input: exit 2 and one message line."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest


def refused(capsys: pytest.CaptureFixture, argv: Sequence[str], pattern: str = "") -> str:
    """Run the CLI with ``argv``; assert exit status 2 without a traceback; return stderr.

    ``pattern`` (a regular expression) must be found in the message when given.
    """
    from togethernet_ros.cli import main

    capsys.readouterr()
    try:
        status = main(list(argv))
    except SystemExit as stop:  # argparse refuses options by raising
        status = stop.code
    message = capsys.readouterr().err.strip()
    assert status == 2, f"exit status {status}, stderr: {message[-2000:]}"
    assert message and "Traceback" not in message, message[-2000:]
    assert re.search(pattern, message), f"{pattern!r} not in: {message[-2000:]}"
    return message
