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
    errors = len(scan.errors)
    metadata = {b"raynas.run": json.dumps(run, sort_keys=True).encode(),
                b"raynas.export": json.dumps({"cells": len(index), "space_size": len(space),
                                              "error_rows": errors}).encode()}
    table = table.replace_schema_metadata(metadata)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Exported(target, len(index), len(space), errors)


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
