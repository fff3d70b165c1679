"""A results directory that cannot lie (issue 10, item 1): every reader takes only parts
with the run's config and columns, each cell once; `raynas check` names the rest and moves
it aside, deleting nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raynas.cli import main
from raynas.results import (check_or_write_run_config, load_results, part_name, row_schema, rows_to_table,
                            scan_results, scored_cells, write_part_atomic)
from raynas.scoring import CellScorer



def write_run(out: Path, cells: list[int], proxies: str = "params;flops", record: bool = True) -> str:
    scorer = CellScorer("nb201", proxies)
    rows = list(scorer.iter_scores(cells))
    name = part_name(cells)
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, name)
    if record:
        check_or_write_run_config(out, scorer.config(), {"raynas": "test"})
    return name


@pytest.fixture
def run(tmp_path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    write_run(out, list(range(0, 16)))
    write_run(out, list(range(16, 32)))
    return out


def test_a_stray_ground_truth_file_is_not_read_as_scores(run, capsys):
    shutil.copy(Path(__file__).parents[1] / "raynas" / "data" / "nb201" / "ground_truth.parquet", run / "gt.parquet")
    table = load_results(run)
    assert table.num_rows == 32 and "cifar10_test" not in table.column_names and "params" in table.column_names
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "32 cells from 2 part(s); skipped 1 file(s) (raynas check lists them)"
    scores = [line.split()[0] for line in out.splitlines()[3:]]
    assert scores == ["params", "flops"]


def test_a_part_of_another_config_is_left_out_and_its_cells_rescored(run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    name = write_run(other, [30, 31, 32, 33], proxies="params")
    shutil.copy(other / name, run / name)
    scan = scan_results(run)
    assert [(p.name, why) for p, why in scan.rejected] == [(name, "written with another scoring configuration")]
    assert load_results(run).num_rows == 32
    assert scored_cells(run) == set(range(32))  # cells 32, 33 are not counted as done


def test_truncated_and_foreign_files_then_quarantine(run, capsys):
    pandas = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    good = sorted(run.glob("part-*.parquet"))[1]
    broken = run / part_name([99, 100])
    broken.write_bytes(good.read_bytes()[:300])
    (run / "notes.txt").write_text("my notes")
    assert main(["check", str(run)]) == 1
    out = capsys.readouterr().out
    assert f"  {broken.name}: unreadable" in out and "  notes.txt: not a raynas part" in out
    assert load_results(run).num_rows == 32
    with pytest.raises(Exception):
        pandas.read_parquet(run)  # what the issue saw
    assert main(["check", str(run), "--quarantine"]) == 0
    assert "moved 2 file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "_quarantine").iterdir()) == sorted([broken.name, "notes.txt"])
    assert len(pandas.read_parquet(run)) == 32
    assert duckdb.sql(f"select count(*) from read_parquet('{run}/*.parquet')").fetchall()[0][0] == 32
    assert main(["check", str(run)]) == 0


def test_a_cell_in_two_parts_is_read_once(run):
    write_run(run, [31, 32, 33])
    scan = scan_results(run)
    assert list(scan.duplicates) == [31] and not scan.rejected
    table = load_results(run)
    assert table.num_rows == 34 and table.column("index").to_pylist() == list(range(34))
