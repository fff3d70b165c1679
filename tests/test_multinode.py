"""Several Ray nodes on this machine (ray.cluster_utils.Cluster: a head without CPUs for
scoring and two worker nodes with their own resources): a run spreads over both workers;
one worker node removed mid-run loses and duplicates nothing and the survivor finishes with
the same scores as a single process; a node that joins mid-run takes work."""

import threading
import time

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
from ray.cluster_utils import Cluster  # noqa: E402

from conftest import own_ray  # noqa: E402
from raynas.distributed.driver import RunOptions, run_scoring  # noqa: E402
from raynas.results import load_results, scan_results  # noqa: E402
from raynas.scoring import CellScorer  # noqa: E402

PROXIES = "intrain:batch_size=16,resolution=32;params"
JOIN_PROXIES = "intrain:batch_size=64,resolution=32"  # slower cells: the run outlasts Ray Data's rescaling


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


def test_a_node_that_joins_mid_run_takes_work(cluster, tmp_path):
    """The autoscaler's view: a run that started on one worker node (room for one actor)
    grows onto a node that joins while it scores."""
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    own_ray()
    ray.init(address=cluster.address)
    out = tmp_path / "joined"
    result = {}

    def score():  # in a thread: Cluster.add_node must run in the main thread
        result["summary"] = run_scoring(RunOptions(space="nb201", proxies=JOIN_PROXIES, out=out, limit=32, shard_size=1,
                                                   address=cluster.address, max_actors=2, device="cpu",
                                                   progress_interval_s=5))

    thread = threading.Thread(target=score, daemon=True)
    thread.start()
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("part-*.parquet")):
        time.sleep(0.2)
    assert thread.is_alive(), "the run ended before a node could join"
    joined = cluster.add_node(num_cpus=1)
    thread.join(timeout=600)
    assert "summary" in result
    assert sorted(raw_cells(out)) == list(range(32))
    nodes_of_scorers = {a["Address"]["NodeID"] for a in ray._private.state.actors().values()
                        if "ShardScorer" in a.get("ActorClassName", "")}
    assert joined.node_id in nodes_of_scorers  # the new node ran a scoring actor
