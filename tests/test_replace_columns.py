"""Replacing one proxy's columns of an exported table with a rescore of it
(:func:`raynas.export.replace_proxy_columns`): what the committed whole-space tables go
through when a proxy's definition changes (issue 21)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raynas.export import replace_proxy_columns
from raynas.spec import ScoringSpec

CELLS = 6


def _export(path, proxies, values, status=None, index=None, dataset="cifar10"):
    """A table as `raynas export` writes it: key columns, one column per declared role, the
    run's record in its metadata. ``values``: column -> number (every cell gets it + index)."""
    spec = ScoringSpec.resolve("nb201", proxies, dataset=dataset)
    index = list(range(CELLS)) if index is None else index
    columns = {"space": ["nb201"] * len(index), "index": index, "arch": [f"a{i}" for i in index],
               "dataset": [dataset] * len(index), "seed": [0] * len(index), "device": ["cpu"] * len(index),
               "status": status or ["ok"] * len(index), "error": [None] * len(index)}
    columns.update({c: [values[c] + i for i in index] for c in values})
    run = {"config": spec.config(), "columns": spec.column_roles(), "versions": {"raynas": "test"}}
    meta = {b"raynas.run": json.dumps(run).encode(),
            b"raynas.export": json.dumps({"cells": len(index), "space_size": CELLS, "error_rows": 0}).encode()}
    pq.write_table(pa.table(columns).replace_schema_metadata(meta), path)
    return path


BASE = {"intrain": 10.0, "gamma": 1.0, "o": 9.0, "L": 6.0, "intrain_time_s": 0.5, "synflow": 100.0, "params": 7.0}
NEW = {"intrain": 20.0, "gamma": 1.0, "o": 19.0, "L": 6.0, "o_zero_tensors": 2.0, "intrain_time_s": 0.4}


def test_the_rescored_proxy_replaces_its_columns_and_its_config(tmp_path):
    base = _export(tmp_path / "base.parquet", "intrain:noise_tol=0;synflow;params", BASE)
    new = _export(tmp_path / "new.parquet", "intrain", NEW)
    out = replace_proxy_columns(base, new, tmp_path / "merged.parquet")
    assert (out.cells, out.space_size, out.error_rows) == (CELLS, CELLS, 0)
    table = pq.read_table(out.path)
    rows = table.to_pydict()
    assert rows["intrain"] == [20.0 + i for i in range(CELLS)] and rows["o"] == [19.0 + i for i in range(CELLS)]
    assert rows["synflow"] == [100.0 + i for i in range(CELLS)] and rows["params"] == [7.0 + i for i in range(CELLS)]
    assert rows["o_zero_tensors"] == [2.0 + i for i in range(CELLS)]
    assert table.column_names[:len(pq.read_table(base).column_names)] == pq.read_table(base).column_names
    run = json.loads(table.schema.metadata[b"raynas.run"])
    # The merged record is the config one run of today's definitions would have recorded.
    assert run["config"] == ScoringSpec.resolve("nb201", "intrain;synflow;params").config()
    assert run["columns"]["o_zero_tensors"] == {"role": "diagnostic"} and "synflow" in run["columns"]
    replaced = json.loads(table.schema.metadata[b"raynas.replaced"])
    assert set(replaced["columns"]) == set(NEW)
    assert replaced["base_run"]["config"] == ScoringSpec.resolve("nb201", "intrain:noise_tol=0;synflow;params").config()


def test_tables_that_cannot_be_merged_are_refused(tmp_path):
    base = _export(tmp_path / "base.parquet", "intrain:noise_tol=0;synflow;params", BASE)
    other_dataset = _export(tmp_path / "c100.parquet", "intrain", NEW, dataset="cifar100")
    with pytest.raises(ValueError, match="dataset differ"):
        replace_proxy_columns(base, other_dataset, tmp_path / "m.parquet")
    fewer = _export(tmp_path / "fewer.parquet", "intrain", NEW, index=[0, 1, 2])
    with pytest.raises(ValueError, match="the same cells"):
        replace_proxy_columns(base, fewer, tmp_path / "m.parquet")
    status = _export(tmp_path / "status.parquet", "intrain", NEW, status=["ok"] * 3 + ["degenerate"] + ["ok"] * 2)
    with pytest.raises(ValueError, match="'status' differs .* cell 3"):
        replace_proxy_columns(base, status, tmp_path / "m.parquet")
    without_o = _export(tmp_path / "no_o.parquet", "intrain", {k: v for k, v in NEW.items() if k != "o"})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['o'\]"):
        replace_proxy_columns(base, without_o, tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    assert np.isfinite(pq.read_table(base).column("o").to_numpy()).all()  # the base is untouched
