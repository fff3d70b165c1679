"""One row per cell: its key columns, its statuses and every column's Arrow type, in one
torch-free module that the scorer (which fills rows), the actors (which write them) and the
results layer (which reads them back) share, so none of them re-declares the schema.

A row holds the key columns (:data:`KEY_COLUMNS`), each proxy's score columns (float64,
NaN where the proxy could not score), and what scoring the cell cost: per proxy
``<label>_time_s`` and ``<label>_peak_mem_mb``, and ``build_time_s``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

KEY_COLUMNS = ("space", "index", "arch", "dataset", "seed", "device", "status", "error")
STATUS_OK, STATUS_DEGENERATE, STATUS_ERROR = "ok", "degenerate", "error"
BUILD_TIME_COLUMN = "build_time_s"
_STRING_COLUMNS = {"space", "arch", "dataset", "device", "status", "error"}
_INT_COLUMNS = {"index", "seed"}


def measure_columns(label: str) -> tuple[str, str]:
    """What scoring one proxy cost per cell: seconds and peak memory (MB)."""
    return f"{label}_time_s", f"{label}_peak_mem_mb"


def row_columns(score_columns: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Every column of a row, in order: keys, scores, each proxy's cost, the build's."""
    return [*KEY_COLUMNS, *score_columns, *(c for label in labels for c in measure_columns(label)),
            BUILD_TIME_COLUMN]


def row_schema(columns: Sequence[str], config: dict[str, Any] | None = None) -> pa.Schema:
    """Fixed schema: strings and ints for the key columns, float64 for every other; the
    run's config rides along as metadata (a reader refuses a part of another config)."""
    fields = [
        pa.field(c, pa.string() if c in _STRING_COLUMNS else pa.int64() if c in _INT_COLUMNS else pa.float64())
        for c in columns
    ]
    metadata = {b"raynas.config": json.dumps(config, sort_keys=True).encode()} if config else None
    return pa.schema(fields, metadata=metadata)


def rows_to_table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = list(rows)
    return pa.table({f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in schema}, schema=schema)
