"""The results directory: fixed-schema Parquet parts, written atomically, plus run metadata.

Layout of ``OUT/``:

* ``_raynas_run.json`` — what determines the scores (space, dataset, seed, proxy configs)
  and the versions that produced them. A run into a directory written with a different
  config is refused, never mixed.
* ``part-<first cell>-<digest>.parquet`` — one per scored shard; written to a hidden
  ``.tmp-*`` name and renamed, so a visible part is always complete. Readers
  (``pyarrow.dataset``, pandas, DuckDB) skip names starting with ``.`` or ``_``.
* ``_raynas.lock`` — held by the driver while it runs (a lease with a heartbeat on object
  stores, see :mod:`raynas.results_lock`).
* ``_quarantine/`` — files ``raynas check --quarantine`` moved out of the readers' way.

``OUT`` is a local folder or an object-store prefix (``s3://bucket/run``); every function
here takes either, through :mod:`raynas.storage`, which says how each guarantee is kept.

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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pyarrow as pa

from raynas.lock import LOCK_FILE, OutputLocked, acquire_lock  # noqa: F401 — re-exported
from raynas.rows import STATUS_ERROR
from raynas.storage import LocalStore, Store, dumps, open_store

RUN_FILE = "_raynas_run.json"
PART_GLOB = "part-*.parquet"
QUARANTINE_DIR = "_quarantine"

class RunConfigMismatch(RuntimeError):
    """The output directory holds results of a different scoring configuration."""


def part_name(cells: Sequence[int]) -> str:
    """Deterministic name of the part holding exactly ``cells`` (a retry overwrites it)."""
    digest = hashlib.sha1(",".join(map(str, cells)).encode()).hexdigest()[:10]
    return f"part-{min(cells):07d}-{digest}.parquet"


def write_part_atomic(table: pa.Table, out: str | Path | Store, name: str) -> str:
    """Write ``table`` as ``out/name``, visible only when whole (a temporary file and a
    rename locally, one object on an object store)."""
    open_store(out).write_table(name, table)
    return name


def _ref(store: Store, name: str) -> PurePath:
    """A path-like handle of an entry, for messages and ``.name`` (local: a real Path)."""
    return store.path / name if isinstance(store, LocalStore) else PurePosixPath(store.uri) / name


@dataclass
class PartScan:
    """What a results directory holds: parts a reader may use, files it must not (with
    why), and cells that more than one accepted part holds."""

    accepted: list[PurePath] = field(default_factory=list)
    rejected: list[tuple[PurePath, str]] = field(default_factory=list)
    duplicates: dict[int, list[PurePath]] = field(default_factory=dict)
    cells: set[int] = field(default_factory=set)  # every cell of the accepted parts
    errors: set[int] = field(default_factory=set)  # cells whose row a reader uses is an error row
    row_of: dict[int, PurePath] = field(default_factory=dict)  # cell → the part whose row is read

    def warn(self, log: logging.Logger) -> None:
        for path, why in self.rejected:
            log.warning("skipped %s: %s", path.name, why)
        if self.duplicates:
            log.warning("%d cell(s) appear in more than one part (e.g. cell %d in %s); each is read once",
                        len(self.duplicates), *next(iter((c, ", ".join(p.name for p in ps))
                                                         for c, ps in self.duplicates.items())))


def scan_results(out: str | Path | Store) -> PartScan:
    """Check every visible file of ``out`` (names starting with ``.`` or ``_`` are raynas'
    own): a part is accepted only if it is readable Parquet named ``part-*.parquet`` whose
    recorded config is the run's (``_raynas_run.json``; a directory without one, such as
    a benchmark's, accepts any readable part) and whose schema is that of the first one."""
    store = open_store(out)
    config = _run_record(store)["config"] if store.exists(RUN_FILE) else None
    scan, schema = PartScan(), None
    for entry in store.entries():
        if entry.name.startswith((".", "_")):
            continue
        path = _ref(store, entry.name)
        if entry.is_dir or not fnmatch.fnmatch(entry.name, PART_GLOB):
            scan.rejected.append((path, "not a raynas part"))
            continue
        try:
            part_schema = store.read_schema(entry.name)
            columns = ["index", "status"] if "status" in part_schema.names else ["index"]
            table = store.read_table(entry.name, columns=columns)
            cells = table.column("index").to_pylist()
            statuses = table.column("status").to_pylist() if "status" in columns else [None] * len(cells)
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            scan.rejected.append((path, f"unreadable ({(str(exc).splitlines() or [type(exc).__name__])[0]})"))
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
            is_error = status == STATUS_ERROR
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


def scored_cells(out: str | Path | Store) -> set[int]:
    """Cell indices already present in accepted parts (others are rescored, not counted)."""
    return scan_results(out).cells


def drop_replaced_rows(out: str | Path | Store, cells: Iterable[int], keep: Iterable[PurePath | str]) -> int:
    """After ``cells`` were rescored into the parts ``keep``: rewrite every other accepted
    part without its rows of those cells. Returns how many rows were dropped."""
    cells, keep = set(cells), {PurePosixPath(str(k)).name for k in keep}
    store = open_store(out)
    return _rewrite_without(store, scan_results(store), lambda cell, part, status: cell in cells and part.name not in keep)


def drop_superseded_error_rows(out: str | Path | Store) -> int:
    """Error rows of cells that another part holds a real row for (left by a retry that
    was killed before :func:`drop_replaced_rows`). Returns how many rows were dropped."""
    store = open_store(out)
    scan = scan_results(store)
    superseded = {cell for cell in scan.duplicates if cell not in scan.errors}
    return _rewrite_without(store, scan, lambda cell, part, status: (
        status == STATUS_ERROR and cell in superseded and scan.row_of[cell] != part))


def _rewrite_without(store: Store, scan: PartScan, drop) -> int:
    """Rewrite each accepted part without the rows ``drop(cell, part, status)`` names (a
    part left empty is removed). Each rewrite is atomic: a crash leaves at worst a duplicate, which
    readers resolve, never a lost row."""
    dropped = 0
    for path in scan.accepted:
        table = store.read_table(path.name)
        statuses = table.column("status").to_pylist() if "status" in table.column_names else [None] * table.num_rows
        stays = [not drop(cell, path, status) for cell, status in zip(table.column("index").to_pylist(), statuses)]
        if all(stays):
            continue
        remaining = table.filter(pa.array(stays))
        dropped += table.num_rows - remaining.num_rows
        if remaining.num_rows:
            store.write_table(path.name, remaining)
        else:
            store.delete(path.name)
    return dropped


def quarantine(out: str | Path | Store, scan: PartScan) -> list[PurePath]:
    """Move the rejected files into ``out/_quarantine/`` (which readers skip), so that
    pandas and DuckDB read the directory again; nothing is deleted."""
    store = open_store(out)
    moved = []
    for path, _ in scan.rejected:
        target = f"{QUARANTINE_DIR}/{path.name}"
        if store.exists(target):
            target = f"{QUARANTINE_DIR}/{path.name}.{uuid.uuid4().hex[:8]}"
        store.move(path.name, target)
        moved.append(_ref(store, target))
    return moved


def clean_temporaries(out: str | Path | Store) -> int:
    """Remove temporaries left by killed writers; returns how many (none on object stores,
    where an unfinished upload never becomes an object)."""
    return open_store(out).clean_temporaries()


def check_or_write_run_config(out: str | Path | Store, config: dict[str, Any], versions: dict[str, str],
                              columns: dict[str, dict[str, str]] | None = None) -> None:
    """Record the run config (with each proxy column's role, which readers use to tell
    scores from diagnostics), or refuse when the directory holds a different config. The
    record is created only if absent, so two drivers cannot both claim one directory with
    different configs."""
    store = open_store(out)
    record = {"config": config, "versions": versions, **({"columns": columns} if columns else {})}
    if store.create(RUN_FILE, dumps(record)):
        return
    existing = _run_record(store)
    if existing.get("config") != config:
        raise RunConfigMismatch(
            f"{store} holds results of a different scoring configuration; refusing to mix them.\n"
            f"  existing: {json.dumps(existing.get('config'), sort_keys=True)}\n"
            f"  this run: {json.dumps(config, sort_keys=True)}\n"
            "Use another --out directory, or delete the old results."
        )
    if columns and existing.get("columns") and existing["columns"] != columns:
        # The same config from a raynas whose proxies gave other columns (e.g. a diagnostic
        # added since): its parts and this run's could not be read as one table.
        raise RunConfigMismatch(
            f"{store} was written by raynas {existing.get('versions', {}).get('raynas', '?')} with other columns "
            f"({', '.join(sorted(c for c in {*existing['columns'], *columns} if existing['columns'].get(c) != columns.get(c)))}"
            " differ); refusing to mix them. "
            "Use another --out directory."
        )


def read_run_config(out: str | Path | Store) -> dict[str, Any]:
    store = open_store(out)
    if not store.exists(RUN_FILE):
        raise FileNotFoundError(f"{store} is not a raynas results directory (no {RUN_FILE})")
    return _run_record(store)


def _run_record(store: Store) -> dict[str, Any]:
    """The run record, or a one-line error naming the file when it is not one."""
    try:
        record = json.loads(store.read_text(RUN_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{store}/{RUN_FILE} is not a raynas run record (not JSON: {exc})") from None
    if not isinstance(record, dict) or "config" not in record:
        raise ValueError(f"{store}/{RUN_FILE} is not a raynas run record (no 'config' in it)")
    return record


def load_results(out: str | Path | Store, columns: Sequence[str] | None = None,
                 log: logging.Logger | None = None) -> pa.Table:
    """Every accepted row of a results directory (a folder or ``s3://…``) as one table, one
    row per cell (see :func:`scan_results`; what is skipped is logged as a warning)."""
    store = open_store(out)
    scan = scan_results(store)
    scan.warn(log or logging.getLogger("raynas.results"))
    if not scan.accepted:
        return pa.table({})
    read = [store.read_table(p.name, columns=list(columns) if columns else None) for p in scan.accepted]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in read])
    if "index" not in table.column_names:
        return table
    if scan.duplicates:  # keep the row scan_results chose for each cell
        parts = [p for p, t in zip(scan.accepted, read) for _ in range(t.num_rows)]
        cells = table.column("index").to_pylist()
        table = table.filter(pa.array([scan.row_of[c] == p for c, p in zip(cells, parts)]))
    return table.sort_by("index")
