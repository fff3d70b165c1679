"""A results directory that cannot lie (issue 10, item 1): every reader takes only parts
with the run's config and columns, each cell once; `raynas check` names the rest and moves
it aside, deleting nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raynas.cli import main
from raynas.results import (check_or_write_run_config, load_results, part_name, scan_results, scored_cells,
                            write_part_atomic)
from raynas.rows import row_schema, rows_to_table
from raynas.scoring import CellScorer
from raynas.storage import LocalStore


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
    scores = [line.split()[0] for line in out.splitlines()[3:] if not line.startswith("  ")]  # not the notes
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


def _as_error_rows(out: Path, part: str, cells: set[int]) -> None:
    """Turn ``cells``' rows of ``part`` into error rows, as a transient failure (e.g. a GPU
    out of memory) leaves them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(out / part)
    hit = [c in cells for c in table.column("index").to_pylist()]
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        if name == "status":
            values = ["error" if h else v for v, h in zip(values, hit)]
        elif name == "error":
            values = ["params: CUDA out of memory" if h else v for v, h in zip(values, hit)]
        elif name in ("params", "flops"):
            values = [float("nan") if h else v for v, h in zip(values, hit)]
        columns[name] = pa.array(values, type=table.schema.field(name).type)
    write_part_atomic(pa.table(columns, schema=table.schema), out, part)


def test_error_rows_are_counted_and_a_real_row_wins_over_an_error_row(tmp_path, capsys):
    from raynas.results import drop_replaced_rows, drop_superseded_error_rows

    out = tmp_path / "run"
    out.mkdir()
    first = write_run(out, list(range(0, 8)))
    _as_error_rows(out, first, {2, 5})
    scan = scan_results(out)
    assert scan.errors == {2, 5} and scan.cells == set(range(8))
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "8 cells from 1 part(s), 2 of them error rows (score --retry-errors rescores them)")

    # A retry killed after writing its part but before dropping the old rows: cell 2 is in
    # two parts; readers use the real row, not the error row, and count no error for it.
    retried = write_run(out, [2])
    scan = scan_results(out)
    assert scan.errors == {5} and list(scan.duplicates) == [2] and scan.row_of[2].name == retried
    rows = {r["index"]: r for r in load_results(out).to_pylist()}
    assert len(rows) == 8 and rows[2]["status"] == "ok" and rows[2]["params"] > 0

    # The next retry heals it: the superseded error row goes, nothing else.
    assert drop_superseded_error_rows(out) == 1
    scan = scan_results(out)
    assert not scan.duplicates and scan.errors == {5} and scan.cells == set(range(8))

    # Replacing cell 5 by a new row: its old row leaves its part; a part left empty goes.
    again = write_run(out, [5])
    assert drop_replaced_rows(out, [5], keep=[again]) == 1
    assert scan_results(out).errors == set() and len(load_results(out)) == 8
    assert drop_replaced_rows(out, [2], keep=[]) == 1 and not (out / retried).exists()


def test_check_says_when_a_folder_is_not_a_results_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("my notes")
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a raynas results directory (no _raynas_run.json)" in err and len(err.strip().splitlines()) == 1


class CountingStore(LocalStore):
    """A local store that counts the files it opens (issue 23: one results-directory object
    with an incremental scan, instead of a full re-read by every reader)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.opened, self.read = [], []

    def open_parquet(self, name):
        self.opened.append(name)
        return super().open_parquet(name)

    def read_table(self, name, columns=None):
        self.read.append(name)
        return super().read_table(name, columns)


def test_the_scan_reads_only_new_or_rewritten_parts(run):
    from raynas.results import ResultsDir, drop_replaced_rows

    store = CountingStore(run)
    results = ResultsDir(store)
    assert results.scan().cells == set(range(32)) and len(store.opened) == 2
    assert results.scan().cells == set(range(32)) and len(store.opened) == 2  # nothing new: nothing opened
    new = write_run(run, [40, 41])
    assert results.scan().cells == set(range(32)) | {40, 41} and store.opened[2:] == [new]
    # A search reading the directory after each generation reads each part's table once.
    assert results.load(columns=["index", "params"]).num_rows == 34 and len(store.read) == 3
    assert results.load(columns=["index", "params"]).num_rows == 34 and len(store.read) == 3
    # A part written again (here: without a row) is read again, and only it.
    first = part_name(list(range(0, 16)))
    assert drop_replaced_rows(results, [3], keep=[new]) == 1
    assert store.read[3:] == [first]  # only the part holding cell 3 was read to be rewritten
    opened = len(store.opened)
    assert results.scan().cells == (set(range(32)) | {40, 41}) - {3} and store.opened[opened:] == [first]
    assert results.load(columns=["index", "params"]).num_rows == 33 and store.read[4:] == [first]


def test_a_report_after_a_run_reads_no_part_twice(run, capsys):
    from raynas.cli import print_report
    from raynas.results import ResultsDir

    store = CountingStore(run)
    results = ResultsDir(store)
    results.scan()  # what the run's session did before scoring
    print_report(results)  # `raynas score --report`: the run's own directory object
    assert sorted(store.opened) == sorted(set(store.opened)) and len(store.opened) == 2
    assert len(store.read) == 2  # each part's table once, for the correlation table
    assert "32 cells from 2 part(s)" in capsys.readouterr().out
