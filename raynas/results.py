"""The results directory: fixed-schema Parquet parts, written atomically, plus run metadata.

Layout of ``OUT/``:

* ``_raynas_run.json`` — what determines the scores (space, dataset, seed, proxy configs)
  and the versions that produced them. A run into a directory written with a different
  config is refused, never mixed.
* ``part-<first cell>-<digest>.parquet`` — one per scored shard; written to a hidden
  ``.tmp-*`` name and renamed, so a visible part is always complete. Readers
  (``pyarrow.dataset``, pandas, DuckDB) skip names starting with ``.`` or ``_``.
* ``_raynas.lock`` — held by the driver while it runs.

A cell is scored at most once per directory: the driver reads the ``index`` column of the
existing parts and only schedules the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

RUN_FILE = "_raynas_run.json"
LOCK_FILE = "_raynas.lock"
PART_GLOB = "part-*.parquet"

STRING_COLUMNS = {"space", "arch", "dataset", "device", "status", "error"}
INT_COLUMNS = {"index", "seed"}


class RunConfigMismatch(RuntimeError):
    """The output directory holds results of a different scoring configuration."""


class OutputLocked(RuntimeError):
    """Another driver is writing into the output directory."""


def row_schema(columns: Sequence[str], config: dict[str, Any] | None = None) -> pa.Schema:
    """Fixed schema: strings and ints for the identity columns, float64 for every score."""
    fields = [
        pa.field(c, pa.string() if c in STRING_COLUMNS else pa.int64() if c in INT_COLUMNS else pa.float64())
        for c in columns
    ]
    metadata = {b"raynas.config": json.dumps(config, sort_keys=True).encode()} if config else None
    return pa.schema(fields, metadata=metadata)


def rows_to_table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = list(rows)
    return pa.table({f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in schema}, schema=schema)


def part_name(cells: Sequence[int]) -> str:
    """Deterministic name of the part holding exactly ``cells`` (a retry overwrites it)."""
    digest = hashlib.sha1(",".join(map(str, cells)).encode()).hexdigest()[:10]
    return f"part-{min(cells):07d}-{digest}.parquet"


def write_part_atomic(table: pa.Table, out: Path, name: str) -> Path:
    """Write ``table`` to ``out/name`` via a hidden temporary file and an atomic rename."""
    final = out / name
    tmp = out / f".tmp-{uuid.uuid4().hex}-{name}"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def scored_cells(out: Path) -> set[int]:
    """Cell indices already present in complete parts (unreadable parts are ignored)."""
    done: set[int] = set()
    for part in sorted(out.glob(PART_GLOB)):
        try:
            done.update(pq.read_table(part, columns=["index"]).column("index").to_pylist())
        except (pa.ArrowInvalid, OSError):
            continue  # cannot be a committed part (they are renamed whole); rescored
    return done


def clean_temporaries(out: Path) -> int:
    """Remove temporaries left by killed writers; returns how many."""
    stale = list(out.glob(".tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def check_or_write_run_config(out: Path, config: dict[str, Any], versions: dict[str, str]) -> None:
    """Record the run config, or refuse when the directory holds a different one."""
    path = out / RUN_FILE
    if path.exists():
        existing = json.loads(path.read_text())
        if existing.get("config") != config:
            raise RunConfigMismatch(
                f"{out} holds results of a different scoring configuration; refusing to mix them.\n"
                f"  existing: {json.dumps(existing.get('config'), sort_keys=True)}\n"
                f"  this run: {json.dumps(config, sort_keys=True)}\n"
                "Use another --out directory, or delete the old results."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{uuid.uuid4().hex}-{RUN_FILE}"
    tmp.write_text(json.dumps({"config": config, "versions": versions}, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_run_config(out: Path) -> dict[str, Any]:
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a raynas results directory (no {RUN_FILE})")
    return json.loads(path.read_text())


def acquire_lock(out: Path) -> Path:
    """Create the lock file; a stale lock of a dead process on this host is taken over."""
    lock = out / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1))):
                lock.unlink(missing_ok=True)  # its driver was killed
                continue
            raise OutputLocked(f"{out} is being written by {holder or 'another driver'}; delete {lock} if it is not")
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise OutputLocked(f"could not lock {out}")


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


def load_results(out: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """All complete rows of a results directory as one table (one row per cell)."""
    dataset = pads.dataset(str(out), format="parquet", exclude_invalid_files=True)
    table = dataset.to_table(columns=list(columns) if columns else None)
    return table.sort_by("index") if "index" in table.column_names else table
