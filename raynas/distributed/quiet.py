"""Keep Ray's start-up and execution chatter off the user's screen; raynas prints its own
progress line. Ray's logs stay complete in its session folder (/tmp/ray/session_*/logs)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

# Printed by the driver's core worker (C++, straight to file descriptor 2) for every Ray Data
# actor: Ray Data always passes its actors two ObjectRefs (the DataContext and the map
# transformer) and restarts them after a crash (max_restarts -1). The warning is for
# arguments that could go out of scope before a restart; Ray Data's operator holds both
# refs for the whole execution, so a restart always finds them (ray-project/ray#53727).
HARMLESS_ACTOR_ARGS_WARNING = re.compile(rb"core_worker\.cc:\d+: Actor with class name: 'MapWorker\(.*"
                                         rb"has constructor arguments in the object store")


STARTS = 3  # tries of an embedded Ray's start, each of Ray's fixed 30 s


def init_embedded_ray(num_cpus: int) -> None:
    """A local Ray for this process only. Token authentication (on by default for local
    clusters since Ray 2.59) guards a cluster others can reach; this one lives and dies with
    the driver, so it is off unless the user set RAY_AUTH_MODE, and so is its warning."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for attempt in range(1, STARTS + 1):
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            return
        except Exception as exc:  # noqa: BLE001 — Ray raises a bare Exception for this
            # Ray waits a fixed 30 s for its raylet to register; on a machine busy with other
            # work (other Ray clusters, say) that can pass with nothing wrong. Again, up to
            # STARTS times in all, then the error stands.
            if attempt == STARTS or "timed out during startup" not in str(exc):
                raise
            logging.getLogger("raynas.driver").warning(
                f"the embedded Ray did not start within Ray's 30 s (a busy machine?); starting it again "
                f"({attempt + 1} of {STARTS})")
            ray.shutdown()


@contextlib.contextmanager
def keeping_sigterm_handler() -> Iterator[None]:
    """``ray.init`` replaces the process's SIGTERM handler (with one that exits at once, and
    its core worker's, which aborts); a program that chose its own — raynas' CLI ends a run
    on SIGTERM as on Ctrl-C — gets it back. One that chose none keeps Ray's."""
    import signal

    main = threading.current_thread() is threading.main_thread()
    chosen = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if callable(chosen):
            signal.signal(signal.SIGTERM, chosen)


def quiet_ray_data() -> None:
    """Ray Data's console lines (execution plan, "progress bars disabled", finished in N s)
    go to its log file only; its warnings and errors still reach the console, each as one
    line and once (its high-memory warning is 17 lines, repeated every 30 s). The log file
    keeps every message whole."""
    import ray.data  # noqa: F401 — configures the "ray.data" logger

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler) and not isinstance(handler.formatter, OneLineFormatter):
            handler.setLevel(max(handler.level, logging.WARNING))
            handler.addFilter(lambda record: "Progress bars disabled" not in record.getMessage())
            handler.addFilter(OncePerMessage())
            handler.setFormatter(OneLineFormatter(handler.formatter))


def silence_ray_data_console() -> None:
    """For an interrupted run: Ray Data's iterator thread, still waiting on a shard when Ray
    is shut down under it, logs that shutdown as an internal error with a 40-line traceback.
    The user asked for the stop, and the committed parts are intact; the console stays
    quiet, Ray's log file keeps the record. A run that never started Ray Data has none."""
    if "ray.data" not in sys.modules:
        return
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL + 1)


def first_line(message: str) -> str:
    """A message's first paragraph on one line, marked when something was cut."""
    paragraphs = [" ".join(p.split()) for p in message.strip().split("\n\n")]
    head = paragraphs[0] if paragraphs else ""
    return head + (" [more in Ray's log: /tmp/ray/session_latest/logs]" if len(paragraphs) > 1 else "")


class OneLineFormatter(logging.Formatter):
    """Formats a warning as ``inner`` would, with its message cut to :func:`first_line`
    (errors stay whole: their text is what the user needs)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno != logging.WARNING:
            return self.inner.format(record)
        short = logging.makeLogRecord({**record.__dict__, "msg": first_line(record.getMessage()), "args": None,
                                       "exc_info": None, "exc_text": None})
        return self.inner.format(short)


class OncePerMessage(logging.Filter):
    """Lets each distinct first line through once (a warning repeated every 30 s says
    nothing new)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = re.sub(r"\d+(\.\d+)?", "#", first_line(record.getMessage()))  # the same warning with new figures
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def dropping_stderr_lines(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """Pass everything written to file descriptor 2 through, except whole lines matching
    ``pattern`` (for a warning printed by Ray's C++ core, which Python logging cannot
    reach). Restored on exit, also on Ctrl-C."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. some notebook kernels): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not pattern.search(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="raynas-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=5)
        os.close(saved)
