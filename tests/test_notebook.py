"""notebooks/analysis.ipynb runs headless on small results sets made here, so it cannot rot:
from the repository root on a directory given by RAYNAS_RESULTS, and from notebooks/ on
its default path with fewer cells than the top-k's k, as `jupyter nbconvert` runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raynas.results import check_or_write_run_config, part_name, write_part_atomic
from raynas.rows import row_schema, rows_to_table
from raynas.scoring import CellScorer

pytestmark = pytest.mark.e2e  # the notebook runs in a kernel of its own

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def write_results(out: Path, cells: list[int], proxies: str) -> None:
    scorer = CellScorer("nb201", proxies)
    rows = list(scorer.iter_scores(cells))
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, part_name(cells))
    check_or_write_run_config(out, scorer.config(), {"raynas": "test"})


def outputs_of(cells: list[dict]) -> tuple[str, int]:
    """(all text and plain outputs, number of PNG images) of a notebook's code cells."""
    text, images = [], 0
    for cell in cells:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = output.get("data", {})
            text.append("".join(output.get("text", "")) + "".join(data.get("text/plain", "")))
            images += "image/png" in data
    return "".join(text), images


def test_notebook_from_the_repository_root(tmp_path, shared_data, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    write_results(tmp_path, list(range(0, 15_625, 1_250)), "intrain:batch_size=8,resolution=16;params")
    monkeypatch.setenv("RAYNAS_RESULTS", str(tmp_path))
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(shared_data))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    text, images = outputs_of(notebook.cells)
    assert "kendall_tau" in text and "intrain" in text and "13 rows, 13 distinct cells" in text
    assert images == 1  # the score-vs-accuracy panels, inline


def test_notebook_from_its_folder_on_a_run_smaller_than_k(tmp_path):
    pytest.importorskip("nbconvert")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOK, repo / "notebooks")
    (repo / "results" / "nb201").mkdir(parents=True)
    write_results(repo / "results" / "nb201", [3, 700, 9_000, 12_000, 15_000], "params;flops")
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAYNAS_RESULTS"}
    done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output",
                           "executed.ipynb", "analysis.ipynb"], cwd=repo / "notebooks", env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text, images = outputs_of(json.loads((repo / "notebooks" / "executed.ipynb").read_text())["cells"])
    assert str(repo / "results" / "nb201") in text and "5 rows, 5 distinct cells" in text
    assert "best_of_top10" in text and "no InTrain in this run" in text
    assert images == 1
