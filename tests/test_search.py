"""raynas search (issue 13): the fitness, both strategies on a known table, NB201's mutation,
the history, lookup from an exported file, and a search scored through Ray that is killed
and resumes without rescoring a cell."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raynas.search import Fitness, SearchState, TableEvaluator, history_table, run_search
from raynas.spaces import get_space
from raynas.spaces.nb201 import NUM_CELLS, OPS

SPACE = get_space("nb201")


@pytest.fixture(scope="module")
def truth() -> dict[int, float]:
    table = SPACE.ground_truth().table
    return dict(zip(table.column("index").to_pylist(), table.column("cifar10_test").to_pylist()))


def table_of(**columns) -> pa.Table:
    return pa.table({"index": np.arange(NUM_CELLS), **columns})


def test_fitness_orients_ranks_and_constrains():
    rows = [{"a": 1.0, "b": 30.0, "params": 5.0}, {"a": 3.0, "b": 10.0, "params": 50.0},
            {"a": math.nan, "b": 20.0, "params": 5.0}, {"a": 2.0, "b": 40.0, "params": 5.0}]
    assert Fitness.parse("a").values(rows).tolist() == [1.0, 3.0, -math.inf, 2.0]  # NaN ranks last
    assert Fitness.parse("a", lower_is_better=["a"]).values(rows).tolist()[:2] == [-1.0, -3.0]
    # Rank combination (raynas.ensemble): a's ranks (NaN as -inf) 2,4,1,3 and b's 3,1,2,4,
    # each over n = 4; the NaN cell ranks last on a and keeps its rank on b.
    combined = Fitness.parse("a+b").values(rows)
    assert combined.tolist() == pytest.approx([2 / 4 + 3 / 4, 4 / 4 + 1 / 4, 1 / 4 + 2 / 4, 3 / 4 + 4 / 4])
    logrank = Fitness.parse("logrank:a+b").values(rows)
    assert logrank[2] == pytest.approx(math.log(1 / 4) + math.log(2 / 4))
    constrained = Fitness.parse("a", params_max=10).values(rows)
    assert constrained[1] == -math.inf and constrained[3] == 2.0
    with pytest.raises(ValueError, match="name a score column"):
        Fitness.parse(" + ")


def test_nb201_mutation_changes_exactly_one_edge():
    rng = np.random.default_rng(1)
    for parent in rng.choice(NUM_CELLS, 50, replace=False):
        child = SPACE.mutate(int(parent), rng)
        changed = [a != b for a, b in zip(SPACE.ops(int(parent)), SPACE.ops(child))]
        assert sum(changed) == 1 and set(SPACE.ops(child)) <= set(OPS)


def test_sample_picks_the_fittest_of_n_distinct_cells(truth):
    values = np.random.default_rng(0).normal(size=NUM_CELLS)
    evaluator = TableEvaluator(table_of(score=values), ["score"])
    state = run_search("sample", SPACE, evaluator, Fitness.parse("score"), seed=3, n=100)
    assert len(set(state.order)) == 100 and state.best() == max(state.order, key=lambda c: values[c])
    again = run_search("sample", SPACE, evaluator, Fitness.parse("score"), seed=3, n=100)
    assert again.order == state.order  # seeded


def test_evolution_respects_its_budget_and_climbs_a_fitness_that_tracks_accuracy(truth):
    """With the benchmark accuracy itself as the fitness, evolution must find far better
    cells than sampling the same number at random: a known property, not a number."""
    accuracy = np.asarray([truth[i] for i in range(NUM_CELLS)])
    evaluator = TableEvaluator(table_of(acc=accuracy), ["acc"])
    found = []
    for seed in range(5):
        state = run_search("evolution", SPACE, evaluator, Fitness.parse("acc"), seed, budget=200)
        assert len(state.order) == 200 == len(set(state.order))
        found.append(accuracy[state.best()])
        history = history_table(state, SPACE, truth)
        best = history.column("best_fitness_now").to_numpy()
        assert (np.diff(best) >= 0).all() and history.column("step").to_pylist() == list(range(1, 201))
    assert np.mean(found) > 93.5 > np.mean(accuracy)  # the space's best is 94.37; its mean ~87
    repeat = run_search("evolution", SPACE, evaluator, Fitness.parse("acc"), 0, budget=200)
    assert repeat.order == run_search("evolution", SPACE, evaluator, Fitness.parse("acc"), 0, budget=200).order


def test_state_keeps_the_first_of_equals_and_a_running_best():
    state = SearchState(Fitness.parse("s"))
    state.add({1: {"s": 1.0}, 2: {"s": 5.0}, 3: {"s": 5.0}, 4: {"s": 2.0}}, [1, 2, 3, 4])
    assert state.best() == 2 and state.best_history == [1, 2, 2, 2]


def test_lookup_from_an_exported_file_and_load_scores(tmp_path, monkeypatch, capsys):
    from raynas.cli import main
    from raynas.export import load_scores
    from raynas.results import check_or_write_run_config, part_name, write_part_atomic
    from raynas.rows import row_schema, rows_to_table
    from raynas.scoring import CellScorer

    out = tmp_path / "run"
    out.mkdir()
    scorer = CellScorer("nb201", "params", threads=1)
    for start in range(0, NUM_CELLS, 5_000):
        cells = list(range(start, min(start + 5_000, NUM_CELLS)))
        rows = [{**dict.fromkeys(scorer.columns, math.nan), "space": "nb201", "index": c, "arch": "", "dataset": "cifar10",
                 "seed": 0, "device": "cpu", "status": "ok", "error": "", "params": float(c % 977)} for c in cells]
        write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, part_name(cells))
    check_or_write_run_config(out, scorer.config(), {"raynas": "test"})
    target = tmp_path / "scores" / "nb201_cifar10.parquet"
    assert main(["export", str(out), str(target), "--complete", "--drop", "build_time_s"]) == 0
    assert "exported the whole space (0 error rows), each once" in capsys.readouterr().out
    monkeypatch.setenv("RAYNAS_SCORES_DIR", str(target.parent))
    table = load_scores("nb201", "cifar10")
    assert table.column("index").to_pylist() == list(range(NUM_CELLS)) and b"raynas.run" in table.schema.metadata
    assert "build_time_s" not in table.column_names

    assert main(["search", "nb201", "--strategy", "sample", "--n", "1000", "--fitness", "params",
                 "--scores", str(target), "--history", str(tmp_path / "h.parquet")]) == 0
    printed = capsys.readouterr().out
    assert "fitness (params) 976" in printed and "1000 cells scored" in printed
    assert pq.read_table(tmp_path / "h.parquet").num_rows == 1000


@pytest.mark.ray
@pytest.mark.e2e
def test_a_search_scored_through_ray_resumes_without_rescoring(tmp_path):
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "raynas.cli", "search", "nb201", "--strategy", "evolution", "--fitness",
           "synflow_log", "--out", str(out), "--budget", "24", "--population", "8", "--sample-size", "3",
           "--generation", "4", "--seed", "7", "--progress-interval", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "first.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the search ended before it could be killed: " + log.read_text()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    parts_before = {p.name for p in out.glob("part-*.parquet")}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [c for p in out.glob("part-*.parquet") for c in pq.read_table(p, columns=["index"]).column("index").to_pylist()]
    assert len(rows) == len(set(rows)) == 24  # no cell scored twice, the budget exactly
    assert parts_before <= {p.name for p in out.glob("part-*.parquet")}  # nothing rewritten or lost
    history = pq.read_table(out / "_search" / "evolution-synflow_log-seed7.parquet")
    assert history.num_rows == 24 and (out / "_search" / "evolution-synflow_log-seed7.png").is_file()
    # The same search replayed on the scores it left (lookup mode) chooses the same cell.
    replay = subprocess.run([*cmd[:cmd.index("--out")], "--scores", str(out), *cmd[cmd.index("--out") + 2:]],
                            env=env, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr[-2000:]
    chosen = [line for line in done.stdout.splitlines() if line.startswith("chosen cell")]
    assert chosen and chosen == [line for line in replay.stdout.splitlines() if line.startswith("chosen cell")]


def test_lookup_in_a_partial_table_warns_and_stops_at_a_missing_cell(tmp_path, capsys, caplog):
    from raynas.cli import main

    partial = tmp_path / "partial.parquet"
    pq.write_table(pa.table({"index": np.arange(100), "params": np.arange(100, dtype=float)}), partial)
    with caplog.at_level("WARNING", logger="raynas"):
        assert main(["search", "nb201", "--fitness", "params", "--scores", str(partial)]) == 2
    assert any("holds 100 of nb201's 15625 cells" in r.getMessage() for r in caplog.records)
    assert "is not in the scores table (100 cells); lookup needs a table of the whole space" in capsys.readouterr().err


def test_search_table_searches_a_scored_part_of_the_space_on_its_cells_only(tmp_path, truth):
    """benchmarks/search_table.py --subset: a proxy scored only on some cells (GradAlign on
    the GPU's partial run) is searched over those cells, never outside them."""
    cells = np.random.default_rng(1).choice(NUM_CELLS, size=1500, replace=False)
    oracle = [truth[int(c)] for c in cells]  # a perfect proxy: the chosen cell is each draw's best
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"index": cells, "oracle": oracle}), path)
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "search_table.py")
    whole = subprocess.run([sys.executable, script, "--table", f"cifar10={path}", "--fitness", "oracle"],
                           capture_output=True, text=True)
    assert whole.returncode != 0 and "--subset" in whole.stderr  # lookup alone needs every cell
    out = subprocess.run([sys.executable, script, "--subset", "--table", f"cifar10={path}", "--fitness", "oracle",
                          "--runs", "20"], capture_output=True, text=True, check=True).stdout
    rows = {line.split("|")[2].strip(): float(line.split("|")[4].split("±")[0])
            for line in out.splitlines() if line.startswith("| sample |")}
    assert list(rows) == ["10", "100", "1000"]  # sample only, N below the 1,500 cells
    assert rows["10"] < rows["100"] < rows["1000"] <= max(oracle)
    assert max(oracle) - rows["1000"] < 0.3  # 1,000 of these 1,500 cells nearly always hold their best
