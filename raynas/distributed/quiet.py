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


def init_embedded_ray(num_cpus: int) -> None:
    """A local Ray for this process only. Token authentication (on by default for local
    clusters since Ray 2.59) guards a cluster others can reach; this one lives and dies with
    the driver, so it is off unless the user set RAY_AUTH_MODE, and so is its warning."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)


def quiet_ray_data() -> None:
    """Ray Data's console lines (execution plan, "progress bars disabled", finished in N s)
    go to its log file only; its warnings and errors still reach the console."""
    import ray.data  # noqa: F401 — configures the "ray.data" logger

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler) and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: "Progress bars disabled" not in record.getMessage())


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
