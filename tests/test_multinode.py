"""Several Ray nodes on this machine (ray.cluster_utils.Cluster: a head without CPUs for
scoring and two worker nodes with their own resources): a run spreads over both workers;
one worker node removed mid-run loses and duplicates nothing and the survivor finishes with
the same scores as a single process; a node that joins mid-run takes work."""

import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
from ray.cluster_utils import Cluster  # noqa: E402

from conftest import own_ray  # noqa: E402
from gated_proxy import GATE_ENV  # noqa: E402
from raynas.distributed.driver import RunOptions, run_scoring  # noqa: E402
from raynas.results import load_results, scan_results  # noqa: E402
from raynas.scoring import CellScorer  # noqa: E402

PROXIES = "intrain:batch_size=16,resolution=32;params"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def raw_cells(out) -> list[int]:
    import pyarrow.parquet as pq

    scan = scan_results(out)
    assert not scan.rejected, scan.rejected
    return [c for p in scan.accepted for c in pq.read_table(p, columns=["index"]).column("index").to_pylist()]


def same_scores_as_one_process(out, cells):
    rows = {r["index"]: r for r in load_results(out).to_pylist()}
    for row in CellScorer("nb201", PROXIES, threads=1).iter_scores(cells):
        assert rows[row["index"]]["intrain"] == row["intrain"] and rows[row["index"]]["params"] == row["params"]


def test_a_worker_node_lost_mid_run_loses_and_duplicates_nothing(cluster, tmp_path):
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    own_ray()
    ray.init(address=cluster.address)
    out = tmp_path / "lost"
    removed = []

    def remove_when_scoring():
        deadline = time.time() + 300
        while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
            time.sleep(0.2)
        cluster.remove_node(doomed)
        removed.append(time.time())

    thread = threading.Thread(target=remove_when_scoring, daemon=True)
    thread.start()
    summary = run_scoring(RunOptions(space="nb201", proxies=PROXIES, out=out, limit=24, shard_size=2,
                                     address=cluster.address, max_actors=2, progress_interval_s=5))
    thread.join(timeout=10)
    assert removed, "no node was removed; the test proved nothing"
    assert summary.actors == 2  # the run spread over both worker nodes
    assert sorted(raw_cells(out)) == list(range(24))
    same_scores_as_one_process(out, [0, 11, 23])


def scorer_nodes() -> set[str]:
    """The nodes on which a scoring actor is alive."""
    return {a["Address"]["NodeID"] for a in ray._private.state.actors().values()
            if "ShardScorer" in a.get("ActorClassName", "") and a.get("State") == "ALIVE"}


def wait_for(condition, what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.2)


def test_a_node_that_joins_mid_run_takes_work(cluster, tmp_path):
    """The autoscaler's view: a run that started on one worker node (room for one actor)
    grows onto a node that joins while it scores. Every cell waits at a gate
    (tests/gated_proxy.py) that opens only once the joined node runs a scoring actor, so the
    run cannot end first however fast or slow the machine is."""
    first = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    own_ray()
    gate = tmp_path / "gate"
    ray.init(address=cluster.address,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS), GATE_ENV: str(gate)}})
    out = tmp_path / "joined"
    result = {}

    def score():  # in a thread: Cluster.add_node must run in the main thread
        result["summary"] = run_scoring(RunOptions(space="nb201", proxies="gated_proxy.PROXY", out=out, limit=8,
                                                   shard_size=1, address=cluster.address, max_actors=2, device="cpu",
                                                   progress_interval_s=5))

    thread = threading.Thread(target=score, daemon=True)
    thread.start()
    try:
        wait_for(lambda: first.node_id in scorer_nodes(), "a scoring actor on the first node")
        assert not list(out.glob("part-*.parquet")), "a cell passed the closed gate"
        joined = cluster.add_node(num_cpus=1)
        wait_for(lambda: joined.node_id in scorer_nodes(), "a scoring actor on the node that joined")
    finally:
        gate.touch()  # whatever happened, the run may finish
    thread.join(timeout=600)
    assert "summary" in result
    assert sorted(raw_cells(out)) == list(range(8))
