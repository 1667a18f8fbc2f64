"""The bad-data policy: strict mode stops at the first problem, lenient mode counts and reports.

Every reader reports problems here instead of deciding on its own, so one run gives one summary
("3 boxes clipped, 1 image skipped: unreadable ...") and nothing is ever dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

LOGGER = logging.getLogger("togethernet_ros")


class DataError(ValueError):
    """A dataset file is missing, unreadable or wrong (raised in strict mode)."""


@dataclass
class DataIssue:
    """One problem found in a dataset file and what lenient mode did about it."""

    path: str
    problem: str
    action: str
    line: int | None = None

    def describe(self) -> str:
        """Human-readable one-liner naming the file (and line)."""
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.problem} ({self.action})"


@dataclass
class DataIssues:
    """Collects dataset problems; in ``strict`` mode the first one raises :class:`DataError`."""

    strict: bool = False
    issues: list[DataIssue] = field(default_factory=list)

    def report(self, path: str | Path, problem: str, action: str, line: int | None = None) -> None:
        """Record a problem; ``action`` says what lenient mode does ("sample skipped", ...)."""
        issue = DataIssue(str(path), problem, action, line)
        if self.strict:
            where = f"{issue.path}:{line}" if line is not None else issue.path
            raise DataError(f"{where}: {problem} (strict data mode; lenient mode: {action})")
        self.issues.append(issue)

    def counts(self) -> Counter:
        """Number of issues per action, e.g. {"box clipped": 3, "sample skipped": 1}."""
        return Counter(issue.action for issue in self.issues)

    def summary(self, max_lines: int = 20) -> str:
        """Multi-line report: counts per action, then the first ``max_lines`` issues."""
        if not self.issues:
            return "data check: no problems found"
        counts = ", ".join(f"{count} × {action}" for action, count in self.counts().items())
        lines = [f"data check: {len(self.issues)} problem(s): {counts}"]
        lines += ["  " + issue.describe() for issue in self.issues[:max_lines]]
        if len(self.issues) > max_lines:
            lines.append(f"  ... and {len(self.issues) - max_lines} more")
        return "\n".join(lines)

    def log_summary(self) -> None:
        """Log :meth:`summary` (warning level when anything was found)."""
        level = logging.WARNING if self.issues else logging.INFO
        LOGGER.log(level, self.summary())
