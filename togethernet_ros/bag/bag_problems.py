"""Problems found while reading a bag, collected instead of aborting.

A recorded drive with one broken topic or a torn-off end is still worth evaluating: readers
record what they skipped here and the commands print it as a summary at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BagError(RuntimeError):
    """A bag that cannot be processed at all (names the bag and the reason)."""


@dataclass
class BagProblem:
    """One kind of problem on one topic; ``count`` occurrences, ``detail`` from the first one."""

    kind: str
    topic: str | None
    detail: str
    count: int = 1

    def describe(self) -> str:
        """One human-readable line."""
        where = f"{self.topic}: " if self.topic else ""
        times = f" (x{self.count})" if self.count > 1 else ""
        return f"[{self.kind}] {where}{self.detail}{times}"


# Kinds used by the readers; kept as names so tests and reports can filter on them.
MISSING_TOPIC = "missing_topic"
UNKNOWN_TYPE = "unknown_type"
TRUNCATED = "truncated"
OUT_OF_ORDER = "out_of_order"
DECODE_ERROR = "decode_error"
NO_METADATA = "no_metadata"
BAD_METADATA = "bad_metadata"
UNREAD_TOPIC = "unread_topic"
NOT_A_CAMERA = "not_a_camera"
UNSTAMPED = "unstamped"
PER_MESSAGE_KINDS = (DECODE_ERROR, OUT_OF_ORDER, UNSTAMPED)


@dataclass
class BagProblems:
    """Accumulates problems, merging repeats of the same (kind, topic)."""

    items: list[BagProblem] = field(default_factory=list)

    def add(self, kind: str, topic: str | None, detail: str) -> None:
        """Record one occurrence; per-message kinds repeated on a topic only increase the count."""
        for item in self.items:
            if item.kind == kind and item.topic == topic and kind in PER_MESSAGE_KINDS:
                item.count += 1
                return
        self.items.append(BagProblem(kind, topic, detail))

    def of_kind(self, kind: str) -> list[BagProblem]:
        """Problems of one kind."""
        return [item for item in self.items if item.kind == kind]

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        """All problems as printable lines."""
        return [item.describe() for item in self.items]

    def to_dicts(self) -> list[dict]:
        """JSON-ready list."""
        return [
            {"kind": i.kind, "topic": i.topic, "detail": i.detail, "count": i.count}
            for i in self.items
        ]
