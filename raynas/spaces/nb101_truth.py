"""NB101 accuracies keyed by raynas cell index (from the benchmark hash)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.datafiles import resolve_need
from raynas.spaces.nb101 import NB101Space


def load_nb101_ground_truth(path: str | Path | None = None) -> pa.Table:
    """The resolved ``nb101-accuracy`` table (or ``path``: a table with ``hash`` and accuracy
    columns) with an ``index`` column added."""
    table = pq.read_table(Path(path) if path else resolve_need("nb101-accuracy").path)
    space = NB101Space()
    index = [space.index_of(h) for h in table.column("hash").to_pylist()]
    return table.add_column(0, "index", pa.array(index, pa.int64()))
