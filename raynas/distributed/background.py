"""A run's shard summaries, read on a thread of their own, and stopped before Ray is.

The driver reads summaries on a thread so that it can print progress meanwhile and so that
Ctrl-C reaches it at once. That thread, and the threads of Ray Data's execution behind it,
call into Ray. Any Ray call that any thread makes after ``ray.shutdown()`` ends the whole
process at once with exit status 1 (Ray's core worker does that by design). So an
interrupted run stops them, and waits for them to end, before Ray is shut down.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

logger = logging.getLogger("raynas.driver")

# How long an interrupted run waits for its readers to end before Ray goes down regardless.
STOP_WAIT_S = 30.0


class RowsOnAThread:
    """The items of ``rows()``, read on a daemon thread, with a ``None`` whenever
    ``interval_s`` passes without one. An exception raised while reading is raised again
    in the thread that iterates."""

    _END = object()

    def __init__(self, rows: Callable[[], Iterable[Any]], interval_s: float):
        self.interval_s = max(0.1, interval_s)
        self._items: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._drain, args=(rows,), name="raynas-rows", daemon=True)
        self._thread.start()

    def _drain(self, rows: Callable[[], Iterable[Any]]) -> None:
        try:
            for row in rows():
                self._items.put(row)
            self._items.put(self._END)
        except BaseException as exc:  # noqa: BLE001 — handed to the iterating thread
            self._items.put(exc)

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                item = self._items.get(timeout=self.interval_s)
            except queue.Empty:
                yield None
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def wait_for_end(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Waits up to ``timeout_s`` for the reading thread to end (its source must have been
        stopped first: it is blocked on the next row otherwise), and says so if it did not."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("the thread reading the run's results did not stop within %.0f s; "
                           "Ray is shut down under it", timeout_s)


def stop_dataset_execution(dataset: Any) -> None:
    """Shuts down the Ray Data executions of ``dataset`` still running in this process (their
    scheduling loops, metadata fetchers and actor pools), so that their threads end and call
    Ray no more. Ray Data offers no public handle on a running execution: its executor is the
    thread found here, matched by the dataset's id."""
    try:
        from ray.data._internal.execution.streaming_executor import StreamingExecutor
    except ImportError:  # another Ray Data layout: nothing to stop here, say so
        logger.warning("cannot reach Ray Data's executor to stop it; Ray is shut down under it")
        return
    dataset_id = dataset.get_dataset_id()
    for thread in threading.enumerate():
        if isinstance(thread, StreamingExecutor) and getattr(thread, "_dataset_id", None) == dataset_id:
            thread.shutdown(force=True)
