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


@dataclass(frozen=True)
class _PartFacts:
    """What one file said when it was last read (kept until its stamp changes)."""

    stamp: str
    problem: str | None = None  # why no reader may use it, whatever the other files are
    schema: pa.Schema | None = None  # without metadata
    config: dict[str, Any] | None = None  # the config recorded in it (None: none)
    cells: tuple[int, ...] = ()
    statuses: tuple[str | None, ...] = ()


class ResultsDir:
    """One results directory — its store, its run record and what its parts hold — for
    every reader: resume, a search's generations, report, export, check.

    The scan is incremental: each :meth:`scan` lists the directory once and reads only the
    files that are new or written again since (their listing stamp changed; one open per
    file: schema, ``index`` and ``status`` together), so a run that scans before each
    generation reads each part once. :meth:`load` keeps each part's table, so a search
    reading its directory after every generation reads only the new parts."""

    def __init__(self, out: str | Path | Store | ResultsDir):
        self.store = out.store if isinstance(out, ResultsDir) else open_store(out)
        self._facts: dict[str, _PartFacts] = {}
        self._tables: dict[tuple[str, str, tuple[str, ...] | None], pa.Table] = {}
        self._record: dict[str, Any] | None = None

    def __str__(self) -> str:
        return str(self.store)

    def run_record(self) -> dict[str, Any] | None:
        """The run record (config, versions, column roles), or None where there is none
        (e.g. a benchmark's folder). Read once it exists: it is created once, never changed."""
        if self._record is None and self.store.exists(RUN_FILE):
            self._record = _run_record(self.store)
        return self._record

    def run_config(self) -> dict[str, Any] | None:
        record = self.run_record()
        return record["config"] if record else None

    def scan(self) -> PartScan:
        """Check every visible file (names starting with ``.`` or ``_`` are raynas' own): a
        part is accepted only if it is readable Parquet named ``part-*.parquet`` whose
        recorded config is the run's (a directory without a run record, such as a
        benchmark's, accepts any readable part) and whose schema is that of the first one."""
        config = self.run_config()
        facts: dict[str, _PartFacts] = {}
        for entry in self.store.entries():
            if entry.name.startswith((".", "_")):
                continue
            known = self._facts.get(entry.name)
            fresh = known is not None and known.stamp == entry.stamp and entry.stamp
            facts[entry.name] = known if fresh else self._read_facts(entry)
        self._facts = facts
        live = {(name, f.stamp) for name, f in facts.items()}
        self._tables = {k: t for k, t in self._tables.items() if (k[0], k[1]) in live}
        return self._judge(config)

    def _read_facts(self, entry) -> _PartFacts:
        if entry.is_dir or not fnmatch.fnmatch(entry.name, PART_GLOB):
            return _PartFacts(entry.stamp, problem="not a raynas part")
        try:
            handle = self.store.open_parquet(entry.name)
            schema = handle.schema_arrow
            columns = ["index", "status"] if "status" in schema.names else ["index"]
            table = handle.read(columns=columns)
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            return _PartFacts(entry.stamp, problem=f"unreadable ({(str(exc).splitlines() or [type(exc).__name__])[0]})")
        recorded = (schema.metadata or {}).get(b"raynas.config")
        cells = tuple(table.column("index").to_pylist())
        statuses = tuple(table.column("status").to_pylist()) if "status" in columns else (None,) * len(cells)
        return _PartFacts(entry.stamp, None, schema.remove_metadata(), json.loads(recorded) if recorded else None,
                          cells, statuses)

    def _judge(self, config: dict[str, Any] | None) -> PartScan:
        """The scan from the facts alone (no I/O): which parts a reader uses, and each
        cell's row."""
        scan, schema = PartScan(), None
        for name, facts in sorted(self._facts.items()):
            path = _ref(self.store, name)
            why = facts.problem
            if why is None and config is not None and facts.config is None:
                why = "no raynas config recorded (not written by raynas)"
            elif why is None and config is not None and facts.config != config:
                why = "written with another scoring configuration"
            elif why is None and schema is not None and not facts.schema.equals(schema):
                why = "columns differ from the other parts"
            if why is not None:
                scan.rejected.append((path, why))
                continue
            schema = schema or facts.schema
            scan.accepted.append(path)
            for cell, status in zip(facts.cells, facts.statuses):
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

    def load(self, columns: Sequence[str] | None = None, log: logging.Logger | None = None) -> pa.Table:
        """Every accepted row as one table, one row per cell, index-sorted (what is skipped
        is logged as a warning). Each part's table is kept until the part changes."""
        scan = self.scan()
        scan.warn(log or logging.getLogger("raynas.results"))
        if not scan.accepted:
            return pa.table({})
        wanted = tuple(columns) if columns else None
        read = []
        for path in scan.accepted:
            key = (path.name, self._facts[path.name].stamp, wanted)
            if key not in self._tables:
                table = self.store.read_table(path.name, columns=list(wanted) if wanted else None)
                self._tables[key] = table.replace_schema_metadata(None)
            read.append(self._tables[key])
        table = pa.concat_tables(read)
        if "index" not in table.column_names:
            return table
        if scan.duplicates:  # keep the row the scan chose for each cell
            parts = [p for p, t in zip(scan.accepted, read) for _ in range(t.num_rows)]
            cells = table.column("index").to_pylist()
            table = table.filter(pa.array([scan.row_of[c] == p for c, p in zip(cells, parts)]))
        return table.sort_by("index")


def scan_results(out: str | Path | Store | ResultsDir) -> PartScan:
    """:meth:`ResultsDir.scan` of ``out`` (a folder, ``s3://…``, or a :class:`ResultsDir`)."""
    return _as_results(out).scan()


def _as_results(out: str | Path | Store | ResultsDir) -> ResultsDir:
    return out if isinstance(out, ResultsDir) else ResultsDir(out)


def scored_cells(out: str | Path | Store | ResultsDir) -> set[int]:
    """Cell indices already present in accepted parts (others are rescored, not counted)."""
    return _as_results(out).scan().cells


def drop_replaced_rows(out: str | Path | Store | ResultsDir, cells: Iterable[int],
                       keep: Iterable[PurePath | str]) -> int:
    """After ``cells`` were rescored into the parts ``keep``: rewrite every other accepted
    part without its rows of those cells. Returns how many rows were dropped."""
    cells, keep = set(cells), {PurePosixPath(str(k)).name for k in keep}
    return _rewrite_without(_as_results(out), lambda cell, part, status: cell in cells and part.name not in keep)


def drop_superseded_error_rows(out: str | Path | Store | ResultsDir) -> int:
    """Error rows of cells that another part holds a real row for (left by a retry that
    was killed before :func:`drop_replaced_rows`). Returns how many rows were dropped."""
    results = _as_results(out)
    scan = results.scan()
    superseded = {cell for cell in scan.duplicates if cell not in scan.errors}
    return _rewrite_without(results, lambda cell, part, status: (
        status == STATUS_ERROR and cell in superseded and scan.row_of[cell] != part))


def _rewrite_without(results: ResultsDir, drop) -> int:
    """Rewrite each accepted part without the rows ``drop(cell, part, status)`` names (a
    part left empty is removed); parts without such rows are not read. Each rewrite is
    atomic: a crash leaves at worst a duplicate, which readers resolve, never a lost row."""
    dropped, store = 0, results.store
    for path in results.scan().accepted:
        facts = results._facts[path.name]
        if not any(drop(cell, path, status) for cell, status in zip(facts.cells, facts.statuses)):
            continue
        table = store.read_table(path.name)
        statuses = table.column("status").to_pylist() if "status" in table.column_names else [None] * table.num_rows
        stays = [not drop(cell, path, status) for cell, status in zip(table.column("index").to_pylist(), statuses)]
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


def read_run_config(out: str | Path | Store | ResultsDir) -> dict[str, Any]:
    """The run record of a results directory; a one-line error if it has none."""
    results = _as_results(out)
    record = results.run_record()
    if record is None:
        raise FileNotFoundError(f"{results} is not a raynas results directory (no {RUN_FILE})")
    return record


def _run_record(store: Store) -> dict[str, Any]:
    """The run record, or a one-line error naming the file when it is not one."""
    try:
        record = json.loads(store.read_text(RUN_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{store}/{RUN_FILE} is not a raynas run record (not JSON: {exc})") from None
    if not isinstance(record, dict) or "config" not in record:
        raise ValueError(f"{store}/{RUN_FILE} is not a raynas run record (no 'config' in it)")
    return record


def load_results(out: str | Path | Store | ResultsDir, columns: Sequence[str] | None = None,
                 log: logging.Logger | None = None) -> pa.Table:
    """Every accepted row of a results directory (a folder or ``s3://…``) as one table, one
    row per cell (:meth:`ResultsDir.load`)."""
    return _as_results(out).load(columns, log)
