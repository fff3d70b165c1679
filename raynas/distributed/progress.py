"""Progress of a run, per cell: the actors report each scored cell to a small board (a Ray
actor, so the driver sees cells of shards still in flight), and the driver prints one line
at a fixed interval — cells scored and committed, cells/s, ETA, error rows (also fine in
job logs, where a progress bar is not)."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressBoard:
    """Cells scored so far, per shard, and the shards whose part is on disk (the driver
    wraps it as a Ray actor). Keyed by shard, so that a shard retried after an actor crash
    counts its cells once. Actors tell it as they go: the driver's own count of committed
    parts comes through Ray Data's output stream, which can hold results back for minutes."""

    def __init__(self) -> None:
        self.shards: dict[str, tuple[int, int]] = {}
        self.written: set[str] = set()

    def report(self, shard: str, cells: int, errors: int) -> None:
        self.shards[shard] = (cells, errors)

    def committed(self, shard: str) -> None:
        self.written.add(shard)

    def totals(self) -> tuple[int, int, int]:
        """(cells scored, error rows, cells in parts on disk)."""
        return (sum(c for c, _ in self.shards.values()), sum(e for _, e in self.shards.values()),
                sum(self.shards[s][0] for s in self.written if s in self.shards))


class Progress:
    """The driver's view: ``scored`` counts cells as actors finish them, ``committed``
    counts cells in parts on disk (what an interrupted run keeps)."""

    QUIET_S = 60.0  # while nothing changes, one line a minute at most (not 19 lines of "0/10")

    def __init__(self, total: int, already_done: int = 0, interval_s: float = 10.0, stream: TextIO = sys.stderr,
                 estimated_rate: float | None = None):
        """``estimated_rate``: cells/s expected before any is measured (from
        :mod:`raynas.cost`), for an ETA while the first cells are under way."""
        self.total, self.scored, self.committed, self.errors = total, 0, 0, 0
        self.confirmed = 0  # cells in parts the driver has seen come back
        self.committed_errors = 0
        self.already_done = already_done
        self.interval_s, self.stream = interval_s, stream
        self.estimated_rate = estimated_rate
        self.start = self._last = time.monotonic()
        self._printed: tuple | None = None

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.scored / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        pct = 100.0 * self.scored / self.total if self.total else 100.0
        prior = f" (+{self.already_done} from earlier runs)" if self.already_done else ""
        head = f"[raynas] {self.scored}/{self.total} cells ({pct:.1f}%), {self.committed} committed{prior}, "
        if self.scored == 0 and self.total:
            elapsed = time.monotonic() - self.start
            left = self.total / self.estimated_rate - elapsed if self.estimated_rate else math.nan
            eta = (f", ETA ~{_clock(left)} (estimated)" if left > 0 else
                   ", slower than estimated" if self.estimated_rate else "")
            return f"{head}first cells under way for {_clock(elapsed)}{eta}, error rows {self.errors}"
        rate = self.rate
        eta = (self.total - self.scored) / rate if rate > 0 else float("inf")
        return f"{head}{rate:.2f} cells/s, ETA {_clock(eta)}, error rows {self.errors}"

    def live(self, scored: int, errors: int, on_disk: int = 0) -> None:
        """Totals from the board (cells scored, error rows, cells in parts the actors have
        written); never below what is already counted."""
        self.committed = min(self.total, max(self.committed, on_disk))
        self.scored = min(self.total, max(self.scored, scored, self.committed))
        self.errors = max(self.errors, errors)
        self.maybe_print()

    def commit(self, cells: int, errors: int = 0) -> None:
        """A part the driver has seen come back (the count the run's summary gives)."""
        self.confirmed += cells
        self.committed = max(self.committed, self.confirmed)
        self.scored = max(self.scored, self.committed)
        self.committed_errors += errors
        self.errors = max(self.errors, self.committed_errors)
        self.maybe_print(force=self.confirmed >= self.total)

    def maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        state = (self.scored, self.committed, self.errors)
        due = now - self._last >= (self.interval_s if state != self._printed else max(self.interval_s, self.QUIET_S))
        if force or due:
            self._last, self._printed = now, state
            print(self.line(), file=self.stream, flush=True)
