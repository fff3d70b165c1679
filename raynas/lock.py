"""The driver's claim on a results directory: a lease object (``_raynas.lock``) naming its
holder, renewed by a heartbeat, taken over when stale.

One driver writes a directory at a time. The lease is created only if absent; its holder
renews it every ``stale_after_s / 4`` seconds by compare-and-swap (S3: ``If-Match`` on the
object's ETag), so a driver that lost it (another took it over) notices and stops. A lease
whose heartbeat is older than ``stale_after_s`` (default 120 s, judged by the reader's
clock: keep clocks within a few seconds) belongs to a dead driver and is taken over, also by
compare-and-swap, so of two drivers racing for a stale lease one wins. A lease held by a
process of this host that is no longer running is taken over at once.

Workers check that they see the lease with the holder's id: a worker on a node that does
not share the directory sees none, and the run stops instead of scattering parts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from pathlib import Path

from raynas.storage import Store, dumps, open_store

LOCK_FILE = "_raynas.lock"
STALE_AFTER_S = 120.0
logger = logging.getLogger("raynas.lock")


class OutputLocked(RuntimeError):
    """Another driver is writing into the output directory."""


class LeaseLost(RuntimeError):
    """Another driver took this driver's lease over."""


@dataclass
class Lease:
    store: Store
    holder: dict
    version: str | None
    stale_after_s: float
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.holder["id"]

    def renew(self) -> bool:
        """Write a new heartbeat if the lease is still ours; False (and ``lost``) if not."""
        current = self.store.read_versioned(LOCK_FILE)
        if current is None or _parse(current[0]).get("id") != self.id:
            self.lost = True
            return False
        self.holder["heartbeat"] = time.time()
        if not self.store.replace_if(LOCK_FILE, dumps(self.holder), current[1]):
            self.lost = True
            return False
        return True

    def start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.stale_after_s / 4):
                try:
                    if not self.renew():
                        logger.error("lost the lock on %s to another driver; stopping", self.store)
                        return
                except Exception as exc:  # noqa: BLE001 — a failed renewal is retried next beat
                    logger.warning("could not renew the lock on %s (%s); retrying", self.store, exc)

        self._thread = threading.Thread(target=beat, name="raynas-lease", daemon=True)
        self._thread.start()

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"another driver took over {self.store}; this run stopped (its committed parts are kept)")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = self.store.read_versioned(LOCK_FILE)
        if current is not None and _parse(current[0]).get("id") == self.id:
            self.store.delete(LOCK_FILE)


def acquire_lock(out: str | Path | Store, stale_after_s: float = STALE_AFTER_S) -> Lease:
    """Take the directory's lease, or raise :class:`OutputLocked` naming its holder."""
    store = open_store(out)
    me = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
          "heartbeat": time.time(), "stale_after_s": stale_after_s}
    for _ in range(3):
        if store.create(LOCK_FILE, dumps(me)):
            current = store.read_versioned(LOCK_FILE)
            return Lease(store, me, current[1] if current else None, stale_after_s)
        current = store.read_versioned(LOCK_FILE)
        if current is None:
            continue  # released meanwhile
        holder = _parse(current[0])
        age = time.time() - float(holder.get("heartbeat", 0.0))
        dead_here = holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1)))
        limit = float(holder.get("stale_after_s", stale_after_s))
        if dead_here or age > limit:
            if store.replace_if(LOCK_FILE, dumps(me), current[1]):
                why = "its process is gone" if dead_here else f"its last heartbeat was {age:.0f} s ago (stale after {limit:.0f} s)"
                logger.warning("took over the lock on %s from %s pid %s: %s", store, holder.get("host"),
                               holder.get("pid"), why)
                again = store.read_versioned(LOCK_FILE)
                return Lease(store, me, again[1] if again else None, stale_after_s)
            continue  # another driver took it first; look again
        raise OutputLocked(f"{store} is being written by {holder.get('host')} pid {holder.get('pid')} "
                           f"(last heartbeat {age:.0f} s ago; taken over after {limit:.0f} s without one). "
                           f"If that driver is gone on another host, wait, or delete {LOCK_FILE}")
    raise OutputLocked(f"could not lock {store}: other drivers keep taking it")


def lease_holder(store: Store) -> str | None:
    """The id of the lease now held on ``store``, or None (what a worker checks)."""
    try:
        return _parse(store.read_bytes(LOCK_FILE)).get("id")
    except OSError:  # FileNotFoundError included: no lease at all
        return None


def _parse(data: bytes) -> dict:
    try:
        return json.loads(data)
    except ValueError:
        return {}


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
