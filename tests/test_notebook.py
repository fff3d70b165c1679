"""notebooks/analysis.ipynb runs headless on a small results set made here, so it cannot rot."""

import os
from pathlib import Path

import pytest

from raynas.results import check_or_write_run_config, part_name, row_schema, rows_to_table, write_part_atomic
from raynas.scoring import CellScorer

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_executes_on_real_results(tmp_path, shared_data, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    scorer = CellScorer("nb201", "intrain:batch_size=8,resolution=16;params")
    cells = list(range(0, 15_625, 1_250))  # 13 cells spread over the space
    rows = list(scorer.iter_scores(cells))
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), tmp_path, part_name(cells))
    check_or_write_run_config(tmp_path, scorer.config(), {"raynas": "test"})

    monkeypatch.setenv("RAYNAS_RESULTS", str(tmp_path))
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(shared_data))
    notebook = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                      for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "kendall_tau" in outputs and "intrain" in outputs and "13 rows" in outputs
