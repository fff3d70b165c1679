"""A periodic progress line on the driver: cells done, cells/s, ETA (also fine in job logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, already_done: int = 0, interval_s: float = 10.0, stream: TextIO = sys.stderr):
        self.total, self.done, self.errors = total, 0, 0
        self.already_done = already_done
        self.interval_s, self.stream = interval_s, stream
        self.start = self._last = time.monotonic()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        prior = f" (+{self.already_done} from earlier runs)" if self.already_done else ""
        return (f"[raynas] {self.done}/{self.total} cells ({pct:.1f}%){prior}, {rate:.2f} cells/s, "
                f"ETA {_clock(eta)}, error rows {self.errors}")

    def update(self, cells: int, errors: int = 0) -> None:
        self.done += cells
        self.errors += errors
        now = time.monotonic()
        if now - self._last >= self.interval_s or self.done >= self.total:
            self._last = now
            print(self.line(), file=self.stream, flush=True)
