"""The results directory: fixed-schema Parquet parts, written atomically, plus run metadata.

Layout of ``OUT/``:

* ``_raynas_run.json`` — what determines the scores (space, dataset, seed, proxy configs)
  and the versions that produced them. A run into a directory written with a different
  config is refused, never mixed.
* ``part-<first cell>-<digest>.parquet`` — one per scored shard; written to a hidden
  ``.tmp-*`` name and renamed, so a visible part is always complete. Readers
  (``pyarrow.dataset``, pandas, DuckDB) skip names starting with ``.`` or ``_``.
* ``_raynas.lock`` — held by the driver while it runs.
* ``_quarantine/`` — files ``raynas check --quarantine`` moved out of the readers' way.

Every reader (resume, ``raynas report``, :func:`load_results`, the notebook) uses only the
parts :func:`scan_results` accepts — readable, named as parts, with the run's config and
the same columns — and reads each cell once. A cell is scored at most once per directory:
the driver reads the ``index`` column of the accepted parts and only schedules the rest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.atomic import TMP_PREFIX, atomic_target

RUN_FILE = "_raynas_run.json"
LOCK_FILE = "_raynas.lock"
PART_GLOB = "part-*.parquet"
QUARANTINE_DIR = "_quarantine"

ERROR_STATUS = "error"  # raynas.scoring.STATUS_ERROR, without importing torch here
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
    with atomic_target(final) as tmp:
        pq.write_table(table, tmp)
    return final


@dataclass
class PartScan:
    """What a results directory holds: parts a reader may use, files it must not (with
    why), and cells that more than one accepted part holds."""

    accepted: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: dict[int, list[Path]] = field(default_factory=dict)
    cells: set[int] = field(default_factory=set)  # every cell of the accepted parts
    errors: set[int] = field(default_factory=set)  # cells whose row a reader uses is an error row
    row_of: dict[int, Path] = field(default_factory=dict)  # cell → the part whose row is read

    def warn(self, log: logging.Logger) -> None:
        for path, why in self.rejected:
            log.warning("skipped %s: %s", path.name, why)
        if self.duplicates:
            log.warning("%d cell(s) appear in more than one part (e.g. cell %d in %s); each is read once",
                        len(self.duplicates), *next(iter((c, ", ".join(p.name for p in ps))
                                                         for c, ps in self.duplicates.items())))


def scan_results(out: str | Path) -> PartScan:
    """Check every visible file of ``out`` (names starting with ``.`` or ``_`` are raynas'
    own): a part is accepted only if it is readable Parquet named ``part-*.parquet`` whose
    recorded config is the run's (``_raynas_run.json``; a directory without one, such as
    a benchmark's, accepts any readable part) and whose schema is that of the first one."""
    out = Path(out)
    run = out / RUN_FILE
    config = json.loads(run.read_text())["config"] if run.is_file() else None
    scan, schema = PartScan(), None
    for path in sorted(p for p in out.iterdir() if not p.name.startswith((".", "_"))):
        if path.is_dir() or not fnmatch.fnmatch(path.name, PART_GLOB):
            scan.rejected.append((path, "not a raynas part"))
            continue
        try:
            part_schema = pq.read_schema(path)
            columns = ["index", "status"] if "status" in part_schema.names else ["index"]
            table = pq.read_table(path, columns=columns)
            cells = table.column("index").to_pylist()
            statuses = table.column("status").to_pylist() if "status" in columns else [None] * len(cells)
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            scan.rejected.append((path, f"unreadable ({str(exc).splitlines()[0][:80]})"))
            continue
        recorded = (part_schema.metadata or {}).get(b"raynas.config")
        if config is not None and recorded is None:
            scan.rejected.append((path, "no raynas config recorded (not written by raynas)"))
            continue
        if config is not None and json.loads(recorded) != config:
            scan.rejected.append((path, "written with another scoring configuration"))
            continue
        if schema is not None and not part_schema.remove_metadata().equals(schema):
            scan.rejected.append((path, "columns differ from the other parts"))
            continue
        schema = schema or part_schema.remove_metadata()
        scan.accepted.append(path)
        for cell, status in zip(cells, statuses):
            is_error = status == ERROR_STATUS
            if cell not in scan.row_of:
                scan.row_of[cell] = path
            else:
                scan.duplicates.setdefault(cell, [scan.row_of[cell]]).append(path)
                if cell not in scan.errors or is_error:
                    continue
                scan.row_of[cell] = path  # a row that is not an error wins over an error row
            (scan.errors.add if is_error else scan.errors.discard)(cell)
    scan.cells = set(scan.row_of)
    return scan


def scored_cells(out: Path) -> set[int]:
    """Cell indices already present in accepted parts (others are rescored, not counted)."""
    return scan_results(out).cells


def drop_replaced_rows(out: str | Path, cells: Iterable[int], keep: Iterable[Path | str]) -> int:
    """After ``cells`` were rescored into the parts ``keep``: rewrite every other accepted
    part without its rows of those cells. Returns how many rows were dropped."""
    cells, keep = set(cells), {Path(k).name for k in keep}
    return _rewrite_without(Path(out), scan_results(out), lambda cell, part, status: cell in cells and part.name not in keep)


def drop_superseded_error_rows(out: str | Path) -> int:
    """Error rows of cells that another part holds a real row for (left by a retry that
    was killed before :func:`drop_replaced_rows`). Returns how many rows were dropped."""
    scan = scan_results(out)
    superseded = {cell for cell in scan.duplicates if cell not in scan.errors}
    return _rewrite_without(Path(out), scan, lambda cell, part, status: (
        status == ERROR_STATUS and cell in superseded and scan.row_of[cell] != part))


def _rewrite_without(out: Path, scan: PartScan, drop) -> int:
    """Rewrite each accepted part without the rows ``drop(cell, part, status)`` names (a
    part left empty is removed). Each rewrite is atomic: a crash leaves at worst a duplicate, which
    readers resolve, never a lost row."""
    dropped = 0
    for path in scan.accepted:
        table = pq.read_table(path)
        statuses = table.column("status").to_pylist() if "status" in table.column_names else [None] * table.num_rows
        stays = [not drop(cell, path, status) for cell, status in zip(table.column("index").to_pylist(), statuses)]
        if all(stays):
            continue
        remaining = table.filter(pa.array(stays))
        dropped += table.num_rows - remaining.num_rows
        if remaining.num_rows:
            with atomic_target(path) as tmp:
                pq.write_table(remaining, tmp)
        else:
            path.unlink()
    return dropped


def quarantine(out: str | Path, scan: PartScan) -> list[Path]:
    """Move the rejected files into ``out/_quarantine/`` (which readers skip), so that
    pandas and DuckDB read the directory again; nothing is deleted."""
    target = Path(out) / QUARANTINE_DIR
    moved = []
    for path, _ in scan.rejected:
        target.mkdir(exist_ok=True)
        destination = target / path.name
        if destination.exists():
            destination = target / f"{path.name}.{uuid.uuid4().hex[:8]}"
        os.replace(path, destination)
        moved.append(destination)
    return moved


def clean_temporaries(out: Path) -> int:
    """Remove temporaries left by killed writers; returns how many."""
    stale = list(out.glob(f"{TMP_PREFIX}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def check_or_write_run_config(out: Path, config: dict[str, Any], versions: dict[str, str],
                              columns: dict[str, dict[str, str]] | None = None) -> None:
    """Record the run config (with each proxy column's role, which readers use to tell
    scores from diagnostics), or refuse when the directory holds a different config."""
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
    with atomic_target(path) as tmp:
        record = {"config": config, "versions": versions, **({"columns": columns} if columns else {})}
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))


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


def load_results(out: str | Path, columns: Sequence[str] | None = None,
                 log: logging.Logger | None = None) -> pa.Table:
    """Every accepted row of a results directory as one table, one row per cell (see
    :func:`scan_results`; what is skipped is logged as a warning)."""
    scan = scan_results(out)
    scan.warn(log or logging.getLogger("raynas.results"))
    if not scan.accepted:
        return pa.table({})
    read = [pq.read_table(p, columns=list(columns) if columns else None) for p in scan.accepted]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in read])
    if "index" not in table.column_names:
        return table
    if scan.duplicates:  # keep the row scan_results chose for each cell
        parts = [p for p, t in zip(scan.accepted, read) for _ in range(t.num_rows)]
        cells = table.column("index").to_pylist()
        table = table.filter(pa.array([scan.row_of[c] == p for c, p in zip(cells, parts)]))
    return table.sort_by("index")
