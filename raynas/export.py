"""``raynas export DIR FILE.parquet``: a run as one compact, index-sorted Parquet file,
checked exactly-once first (every cell once, no foreign file, no cell outside the space),
with the run's record (config, versions, column roles) in its metadata. This is the form
whole-space tables are committed in (``data/scores/``) and read by :func:`load_scores`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.atomic import atomic_target
from raynas.results import ResultsDir, read_run_config

SCORES_ENV_VAR = "RAYNAS_SCORES_DIR"


@dataclass(frozen=True)
class Exported:
    path: Path
    cells: int
    space_size: int
    error_rows: int

    @property
    def complete(self) -> bool:
        return self.cells == self.space_size


def export_results(out: str | Path, target: str | Path, require_complete: bool = False,
                   drop_columns: tuple[str, ...] = ()) -> Exported:
    from raynas.spaces import space_from_config

    results = ResultsDir(out)
    store = results.store
    run = read_run_config(results)
    scan = results.scan()
    if scan.rejected:
        raise ValueError(f"{store}: {len(scan.rejected)} file(s) are not parts of this run "
                         f"(e.g. {scan.rejected[0][0].name}: {scan.rejected[0][1]}); `raynas check --quarantine` first")
    if scan.duplicates:
        cell, parts = next(iter(scan.duplicates.items()))
        raise ValueError(f"{store}: cell {cell} is in {len(parts)} parts ({', '.join(p.name for p in parts)}); "
                         "resolve it (raynas check) before exporting")
    space = space_from_config(run["config"])
    table = results.load()  # index-sorted; the scan above is not repeated (nothing changed)
    index = table.column("index").to_numpy()
    if len(index) and (index.min() < 0 or index.max() >= len(space)):
        raise ValueError(f"{store}: cells outside {space.name}'s 0..{len(space) - 1}")
    if require_complete and len(index) != len(space):
        raise ValueError(f"{store} holds {len(index)} of {space.name}'s {len(space)} cells; --complete asks for all")
    table = table.drop_columns([c for c in drop_columns if c in table.column_names])
    return write_export(table, run, len(space), len(scan.errors), target)


def write_export(table: pa.Table, run: dict, space_size: int, error_rows: int, target: str | Path,
                 extra: dict[bytes, bytes] | None = None) -> Exported:
    """``table`` written atomically as an export: the run's record and the export's counts in
    its metadata (plus ``extra``)."""
    metadata = {b"raynas.run": json.dumps(run, sort_keys=True).encode(),
                b"raynas.export": json.dumps({"cells": table.num_rows, "space_size": space_size,
                                              "error_rows": error_rows}).encode(), **(extra or {})}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")
    return Exported(target, table.num_rows, space_size, error_rows)


def scores_dirs() -> list[Path]:
    """Where :func:`load_scores` looks: ``RAYNAS_SCORES_DIR``, then the whole-space tables
    raynas ships (package data, ``raynas/data/scores``: in a wheel as in a checkout)."""
    dirs = [Path(os.environ[SCORES_ENV_VAR])] if os.environ.get(SCORES_ENV_VAR) else []
    return dirs + [Path(__file__).resolve().parent / "data" / "scores"]


def load_scores(space: str, dataset: str, variant: str | None = None) -> pa.Table:
    """A shipped whole-space table (``<space>_<dataset>[_<variant>].parquet``):
    one row per cell, index-sorted, the run's record in ``table.schema.metadata[b"raynas.run"]``."""
    name = f"{space}_{dataset}{f'_{variant}' if variant else ''}.parquet"
    for folder in scores_dirs():
        if (folder / name).is_file():
            return pq.read_table(folder / name)
    raise FileNotFoundError(f"no scores table {name} in {', '.join(map(str, scores_dirs()))}; "
                            f"produce one with raynas score {space} --all and raynas export")


_ROW_CHECKED = ("arch", "device", "status", "error")  # row facts both tables must agree on


def replace_proxy_columns(base: str | Path, update: str | Path, target: str | Path) -> Exported:
    """``base`` (an exported table) with the columns of the proxies ``update`` scored taken
    from ``update`` (an export of the same space, dataset, seed and cells), written to
    ``target``. For re-scoring one proxy of a whole-space table under a new definition
    without re-scoring the others: the result is what one run of the merged config would
    have written. Its ``raynas.run`` is that merged record; ``raynas.replaced`` keeps both
    source records and names the columns that came from ``update``."""
    from raynas.analysis import column_roles, scores_and_run
    from raynas.rows import KEY_COLUMNS
    from raynas.spec import ScoringSpec

    (old, old_run), (new, new_run) = (scores_and_run(Path(p)) for p in (base, update))
    for path, run in ((base, old_run), (update, new_run)):
        if not run:
            raise ValueError(f"{path}: no raynas.run metadata (a table from raynas export)")
    old_cfg, new_cfg = old_run["config"], new_run["config"]
    if differ := sorted(k for k in (old_cfg.keys() & new_cfg.keys()) - {"proxies"} if old_cfg[k] != new_cfg[k]):
        raise ValueError(f"{update}: its {', '.join(differ)} differ from {base}'s; only proxies can be replaced")
    old_index, new_index = (t.column("index").to_numpy() for t in (old, new))
    if len(old_index) != len(new_index) or (old_index != new_index).any():
        raise ValueError(f"{update} holds {len(new_index)} cells, {base} {len(old_index)}: the same cells are needed "
                         "(raynas export --complete of both)")
    for column in _ROW_CHECKED:
        if column in old.column_names and column in new.column_names:
            if (bad := [i for i, a, b in zip(old_index, old.column(column).to_pylist(), new.column(column).to_pylist())
                        if a != b]):
                raise ValueError(f"{update}: column {column!r} differs from {base}'s on {len(bad)} cell(s), "
                                 f"e.g. cell {bad[0]}; its rows cannot be merged")
    labels = {p["label"] for p in new_cfg["proxies"]}
    replaced = [c for cp in ScoringSpec.from_config(old_cfg).proxies if cp.label in labels for c in cp.column_roles()]
    old_roles, new_roles = column_roles(old_run), column_roles(new_run)
    incoming = [c for c in new.column_names if c not in KEY_COLUMNS]
    if stale := sorted(c for c in replaced if c not in incoming):
        raise ValueError(f"{update} lacks column(s) {stale} of the proxies it replaces; they would be left stale")
    columns = {c: (new if c in incoming else old).column(c) for c in old.column_names}
    columns.update({c: new.column(c) for c in incoming if c not in columns})
    rescored = {p["label"]: p for p in new_cfg["proxies"]}
    proxies = [rescored.pop(q["label"], q) for q in old_cfg["proxies"]] + list(rescored.values())
    run = {"config": {**old_cfg, **new_cfg, "proxies": proxies},
           "columns": {**{c: r for c, r in old_roles.items() if c not in incoming}, **new_roles},
           "versions": new_run.get("versions", {})}
    table = pa.table(columns)
    errors = sum(s == "error" for s in table.column("status").to_pylist())
    space_size = json.loads((old.schema.metadata or {}).get(b"raynas.export", b"{}")).get("space_size", len(old_index))
    replaced_record = {"columns": incoming, "base_run": old_run, "update_run": new_run}
    return write_export(table, run, space_size, errors, target,
                        {b"raynas.replaced": json.dumps(replaced_record, sort_keys=True).encode()})
