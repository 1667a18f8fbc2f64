"""Run a write in a fresh interpreter whose disk "fills" after a given number of bytes.

The process gets a file-size limit (RLIMIT_FSIZE), so its write fails part-way with EFBIG as it
would with ENOSPC on a full disk: a real torn write, not a mocked one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TEST_DIR = Path(__file__).resolve().parents[1]


def write_on_a_full_disk(setup: str, write: str, limit_bytes: int) -> str:
    """Run ``setup``, then ``write`` with files limited to ``limit_bytes``; its stdout.

    ``setup`` (imports, inputs) runs before the limit, with test/ on the path; an OSError from
    ``write`` is printed as ``write failed: ...``, which the caller asserts on.
    """
    script = "\n".join(
        [
            "import resource, sys",
            f"sys.path.insert(0, {str(TEST_DIR)!r})",
            textwrap.dedent(setup),
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))",
            "try:",
            textwrap.indent(textwrap.dedent(write).strip(), "    "),
            "except OSError as error:",
            "    print('write failed:', error)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False
    )
    assert "write failed" in result.stdout, result.stdout + result.stderr
    return result.stdout
