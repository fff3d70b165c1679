"""The real pipeline on an embedded Ray (CPU): end to end, a killed driver, a killed actor,
error rows. Uses ray.init(address="local") and ray.shutdown(), never `ray stop`."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from raynas.distributed.driver import RunOptions, run_scoring  # noqa: E402
from raynas.results import RunConfigMismatch, load_results, read_run_config  # noqa: E402
from raynas.scoring import CellScorer  # noqa: E402

CHEAP = "intrain:batch_size=8,resolution=16;params"
SLOWER = "intrain:batch_size=16,resolution=32;params"


def unique_indices(out: Path) -> tuple[list[int], set[int]]:
    """Every row's cell, counted raw over all parts (readers would hide a duplicate)."""
    import pyarrow.parquet as pq

    from raynas.results import scan_results

    scan = scan_results(out)
    assert not scan.rejected, scan.rejected
    idx = [c for p in scan.accepted for c in pq.read_table(p, columns=["index"]).column("index").to_pylist()]
    return idx, set(idx)


def test_a_session_keeps_its_actors_and_its_lease_across_scorings(local_ray, tmp_path):
    """A search's evaluator: three scorings (generations) on the actors the first one
    started, under one lease; a cell already written is not scored again."""
    from raynas.distributed.driver import ScoringSession
    from raynas.lock import lease_holder
    from raynas.storage import open_store

    out = tmp_path / "generations"
    with ScoringSession(RunOptions(space="nb201", proxies=CHEAP, out=out, max_actors=2), persistent_actors=True) as s:
        def pids() -> list[int]:
            return ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in s._actors])

        first = s.score([0, 1, 2, 3], shard_size=2)
        actors, started, lease = list(s._actors), pids(), lease_holder(open_store(out))
        second = s.score([2, 3, 4, 5, 6], shard_size=2)  # 2 and 3 are there already
        third = s.score([7], shard_size=2)
        # The same two actor processes served all three; the lease was never let go.
        assert len(actors) == 2 and s._actors == actors and pids() == started
        assert lease_holder(open_store(out)) == lease == s.lease.id
    assert (first.scored, second.scored, second.already_done, third.scored) == (4, 3, 2, 1)
    assert lease_holder(open_store(out)) is None  # released on leaving
    idx, unique = unique_indices(out)
    assert sorted(idx) == list(range(8))  # each cell once
    rows = {r["index"]: r for r in load_results(out).to_pylist()}
    for row in CellScorer("nb201", CHEAP).iter_scores([0, 5, 7]):
        assert rows[row["index"]]["intrain"] == row["intrain"]


def test_end_to_end_to_parquet(local_ray, tmp_path):
    out = tmp_path / "e2e"
    summary = run_scoring(RunOptions(space="nb201", proxies=CHEAP, out=out, limit=24, shard_size=4,
                                     max_actors=2, progress_interval_s=1))
    assert summary.scored == 24 and summary.device == "cpu" and summary.actors == 2
    idx, unique = unique_indices(out)
    assert len(idx) == 24 and unique == set(range(24))
    config = read_run_config(out)
    assert config["config"]["proxies"][0]["resolution"] == 16 and "torch" in config["versions"]

    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads

    assert pads.dataset(str(out), format="parquet").count_rows() == 24
    assert len(pd.read_parquet(out)) == 24
    assert duckdb.sql(f"select count(distinct index) from read_parquet('{out}/*.parquet')").fetchall()[0][0] == 24

    # Rows equal the plain-Python scorer's (no Ray): determinism across the layers.
    plain = {r["index"]: r for r in CellScorer("nb201", CHEAP).iter_scores([0, 7, 23])}
    table = load_results(out).to_pylist()
    for row in table:
        if row["index"] in plain and row["status"] == "ok":
            assert row["intrain"] == plain[row["index"]]["intrain"]

    again = run_scoring(RunOptions(space="nb201", proxies=CHEAP, out=out, limit=30, shard_size=4))
    assert again.already_done == 24 and again.scored == 6
    assert unique_indices(out)[1] == set(range(30)) and len(unique_indices(out)[0]) == 30

    with pytest.raises(RunConfigMismatch):
        run_scoring(RunOptions(space="nb201", proxies="params", out=out, limit=4))


def test_failing_cells_become_error_rows_and_shards_complete(local_ray, tmp_path):
    out = tmp_path / "err"
    # At 1×1 input the reduction blocks' 2×2 average pooling fails: a real runtime error.
    summary = run_scoring(RunOptions(space="nb201", proxies="intrain:batch_size=4,resolution=1;params",
                                     out=out, cells=[1, 2, 3], shard_size=2))
    rows = load_results(out).to_pylist()
    assert summary.error_rows == 3 and len(rows) == 3
    assert all(r["status"] == "error" and r["error"].startswith("intrain: RuntimeError") for r in rows)
    assert all(r["params"] > 0 for r in rows)


def test_retry_errors_replaces_error_rows_and_counts_the_rest(local_ray, tmp_path):
    from test_results_dir import _as_error_rows

    out = tmp_path / "retry"
    proxies = "params;flops"
    first = run_scoring(RunOptions(space="nb201", proxies=proxies, out=out, limit=8, shard_size=4))
    assert first.scored == 8 and first.error_rows == 0
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    _as_error_rows(out, parts[0], {1, 2})
    _as_error_rows(out, parts[1], {6})

    plain = run_scoring(RunOptions(space="nb201", proxies=proxies, out=out, limit=8))
    assert plain.scored == 0 and plain.error_rows_kept == 3  # kept and counted, not retried

    retried = run_scoring(RunOptions(space="nb201", proxies=proxies, out=out, limit=8, retry_errors=True))
    assert retried.already_done == 5 and retried.scored == 3 and retried.error_rows == 0
    idx, unique = unique_indices(out)
    assert sorted(idx) == list(range(8))  # replaced, not duplicated
    rows = {r["index"]: r for r in load_results(out).to_pylist()}
    expected = {r["index"]: r for r in CellScorer("nb201", proxies).iter_scores([1, 2, 6])}
    for cell in (1, 2, 6):
        assert rows[cell]["status"] == "ok" and rows[cell]["params"] == expected[cell]["params"]


def _shard_actor_pids() -> list[int]:
    import psutil

    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("ShardScorer" in part for part in proc.info["cmdline"] or []):
            pids.append(proc.pid)
    return pids


def test_killed_actor_is_restarted_and_run_completes(local_ray, tmp_path):
    out = tmp_path / "actor"
    killed: list[int] = []

    def assassin():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = _shard_actor_pids()
            if pids and list(out.glob("part-*.parquet")):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.2)

    thread = threading.Thread(target=assassin, daemon=True)
    thread.start()
    run_scoring(RunOptions(space="nb201", proxies=SLOWER, out=out, limit=40, shard_size=2, max_actors=2))
    thread.join()
    assert killed, "no actor was killed; the test proved nothing"
    idx, unique = unique_indices(out)
    assert len(idx) == 40 and unique == set(range(40))


@pytest.mark.e2e
def test_killed_driver_resumes_exactly_once(tmp_path):
    out = tmp_path / "driver"
    cmd = [sys.executable, "-m", "raynas.cli", "score", "nb201", "--proxies", SLOWER, "--out", str(out),
           "--limit", "40", "--shard-size", "2", "--progress-interval", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "first-driver.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 900  # a bound on a hang, not a timing test: a loaded machine is slow
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "driver ended before it could be killed:\n" + log.read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    before = len(load_results(out))
    assert 0 < before < 40, f"{before} cells on disk when the driver was killed:\n" + log.read_text()[-3000:]

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    idx, unique = unique_indices(out)
    assert len(idx) == 40 and unique == set(range(40))

    # Identical scores to an uninterrupted (plain) run, for cells from both sessions.
    rows = {r["index"]: r for r in load_results(out).to_pylist()}
    for row in CellScorer("nb201", SLOWER).iter_scores([0, 1, 38, 39]):
        assert rows[row["index"]]["intrain"] == row["intrain"] or row["status"] != "ok"


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.mark.e2e
def test_sigterm_ends_a_run_like_ctrl_c_and_leaves_no_ray_behind(tmp_path):
    import shutil
    import tempfile

    ray_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "raynas.cli", "score", "nb201", "--proxies", SLOWER, "--out", str(out),
           "--limit", "40", "--shard-size", "2", "--progress-interval", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_dir}
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 900  # a bound on a hang, not a timing test
        while time.time() < deadline and not list(out.glob("part-*.parquet")) and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the driver ended before it could be stopped:\n" + proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)  # to the driver only, as `kill PID` does
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 130, err[-3000:]
        note = [line for line in err.splitlines() if line.startswith("raynas: interrupted: ")]
        assert note and "cells committed" in note[0] and "rerun the same command" in note[0], err[-3000:]
        assert "SIGTERM received" not in err  # Ray's handler (which aborts) did not take it
        # Ray Data's iterator thread, with Ray shut down under it, kept off the console:
        assert "Traceback" not in err and "Ray is not initialized" not in err, err[-3000:]
        deadline = time.time() + 120
        while processes_mentioning(ray_dir) and time.time() < deadline:
            time.sleep(1)
        assert not processes_mentioning(ray_dir), "Ray processes outlived the driver"
    finally:
        for pid in processes_mentioning(ray_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_dir, ignore_errors=True)


def ray_callers() -> list[str]:
    """This process's threads that read a run's results or run its Ray Data execution."""
    return sorted(t.name for t in threading.enumerate()
                  if t.name == "raynas-rows" or type(t).__name__ == "StreamingExecutor")


@pytest.mark.parametrize("persistent_actors", [False, True], ids=["ray-data", "own-actors"])
def test_an_interrupted_scoring_stops_every_thread_that_calls_ray(local_ray, tmp_path, monkeypatch,
                                                                  persistent_actors):
    """A Ray call from any thread after ``ray.shutdown()`` ends the process with status 1
    (Ray's core worker does that), so when an interrupt leaves a scoring, its results
    reader and Ray Data's scheduling loop have ended: the CLI may shut Ray down."""
    from raynas.distributed.driver import ScoringSession
    from raynas.distributed.progress import Progress

    def interrupt(self, cells, errors=0):
        raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "commit", interrupt)  # as Ctrl-C on the first committed part
    before = ray_callers()
    opts = RunOptions(space="nb201", proxies=CHEAP, out=tmp_path / "run", max_actors=2, progress_interval_s=0.2)
    with pytest.raises(KeyboardInterrupt):
        with ScoringSession(opts, persistent_actors=persistent_actors) as session:
            session.score(list(range(12)), shard_size=2)
    assert ray_callers() == before  # none of this scoring's is left, whatever earlier tests left
    assert session._actors is None  # the session's own actors went with the interrupt
    assert ray.get(ray.put(1)) == 1  # Ray itself is untouched: the CLI shuts it down next


@pytest.mark.e2e
def test_cli_prints_per_cell_progress_and_no_ray_chatter(tmp_path):
    """One shard of 6 cells: progress lines count cells before the shard's part is
    committed; Ray's start-up and execution lines stay in its logs."""
    out = tmp_path / "quiet"
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # raynas' own default
    done = subprocess.run([sys.executable, "-m", "raynas.cli", "score", "nb201", "--proxies", SLOWER, "--out", str(out),
                           "--limit", "6", "--shard-size", "6", "--progress-interval", "0.2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    progress = [line for line in done.stderr.splitlines() if line.startswith("[raynas]")]
    in_flight = [line for line in progress if " 0 committed" in line and not line.startswith("[raynas] 0/")]
    assert in_flight, progress  # e.g. "[raynas] 3/6 cells (50.0%), 0 committed, ..."
    assert progress[-1].startswith("[raynas] 6/6 cells (100.0%), 6 committed")
    for chatter in ("Token authentication", "core_worker.cc", "Starting execution", "Progress bars disabled",
                    "Started a local Ray instance"):
        assert chatter not in done.stderr + done.stdout, chatter
