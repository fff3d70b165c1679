"""Results on object storage (issue 12), against a real S3 endpoint on 127.0.0.1 that the
test starts itself: moto's threaded server (moto[server]), which speaks the S3 REST protocol
— including conditional PUTs (If-None-Match, If-Match) — keeping objects in memory. What it
does not emulate: S3's consistency and latency, IAM policies, request signing checks.
raynas talks to it exactly as to AWS: pyarrow.fs for parts, boto3 for the conditional
writes, both configured only through the environment (AWS_ENDPOINT_URL)."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pytest

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from raynas.lock import LOCK_FILE, OutputLocked, acquire_lock  # noqa: E402
from raynas.results import (RunConfigMismatch, check_or_write_run_config, load_results, scan_results,  # noqa: E402
                            write_part_atomic)
from raynas.scoring import CellScorer  # noqa: E402
from raynas.storage import open_store  # noqa: E402

CHEAP = "intrain:batch_size=8,resolution=16;params"


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "raynas-test",
           "AWS_SECRET_ACCESS_KEY": "raynas-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="bkt")
    yield env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def raw_cells(uri: str) -> list[int]:
    """Every row's cell over every part object, counted raw (readers would hide duplicates)."""
    store = open_store(uri)
    scan = scan_results(store)
    assert not scan.rejected, scan.rejected
    return [c for p in scan.accepted for c in store.read_table(p.name, ["index"]).column("index").to_pylist()]


def test_the_run_record_is_created_once_and_a_second_config_is_refused(s3_endpoint):
    uri = "s3://bkt/claim"
    first = CellScorer("nb201", "params").config()
    check_or_write_run_config(uri, first, {"raynas": "test"})
    check_or_write_run_config(uri, first, {"raynas": "test"})  # the same config: fine
    with pytest.raises(RunConfigMismatch, match="holds results of a different scoring configuration"):
        check_or_write_run_config(uri, CellScorer("nb201", "flops").config(), {"raynas": "test"})
    store = open_store(uri)
    assert not store.create("_raynas_run.json", b"{}")  # If-None-Match: * refused the overwrite
    assert json.loads(store.read_text("_raynas_run.json"))["config"] == first


def test_a_stale_lock_is_taken_over_and_its_old_holder_notices(s3_endpoint):
    uri = "s3://bkt/locked"
    lease = acquire_lock(uri, stale_after_s=1.0)
    with pytest.raises(OutputLocked, match="taken over after 1 s without one"):
        acquire_lock(uri, stale_after_s=1.0)
    assert lease.renew()  # a live holder keeps it
    time.sleep(1.5)  # no heartbeat: the lease goes stale
    taken = acquire_lock(uri, stale_after_s=1.0)
    assert taken.id != lease.id
    assert not lease.renew() and lease.lost  # If-Match on the old ETag fails: it stops
    with pytest.raises(RuntimeError, match="another driver took over"):
        lease.check()
    taken.release()
    assert not open_store(uri).exists(LOCK_FILE)


def test_parts_and_readers_on_s3(s3_endpoint):
    uri = "s3://bkt/readers"
    scorer = CellScorer("nb201", "params")
    rows = list(scorer.iter_scores([0, 1, 2]))
    from raynas.results import row_schema, rows_to_table

    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), uri, "part-0000000-a.parquet")
    check_or_write_run_config(uri, scorer.config(), {"raynas": "test"})
    open_store(uri).write_bytes("notes.txt", b"a stray file")
    table = load_results(uri)
    assert table.column("index").to_pylist() == [0, 1, 2]
    from raynas.cli import main

    assert main(["check", uri, "--quarantine"]) == 0
    assert open_store(uri).exists("_quarantine/notes.txt") and not open_store(uri).exists("notes.txt")


def test_score_kill_resume_report_on_s3(s3_endpoint, tmp_path):
    uri = "s3://bkt/run"
    cmd = [sys.executable, "-m", "raynas.cli", "score", "nb201", "--proxies", CHEAP, "--out", uri,
           "--limit", "24", "--shard-size", "2", "--progress-interval", "1"]
    env = {**os.environ, **s3_endpoint}
    proc = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(scan_results(uri).accepted) < 2 and proc.poll() is None:
        time.sleep(0.3)
    assert proc.poll() is None, "the driver ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait()
    before = len(load_results(uri))
    assert 0 < before < 24
    assert open_store(uri).exists(LOCK_FILE)  # the dead driver's lease is left behind

    done = subprocess.run(cmd + ["--report"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"took over the lock on {uri}" in done.stderr  # its process is gone (same host)
    cells = raw_cells(uri)
    assert sorted(cells) == list(range(24))  # every cell exactly once
    assert "24 cells from 12 part(s)" in done.stdout and "kendall_tau" in done.stdout
    rows = {r["index"]: r for r in load_results(uri).to_pylist()}
    for row in CellScorer("nb201", CHEAP).iter_scores([0, 23]):
        assert rows[row["index"]]["intrain"] == row["intrain"]
    assert not open_store(uri).exists(LOCK_FILE)
    secret = s3_endpoint["AWS_SECRET_ACCESS_KEY"]
    assert secret not in done.stdout + done.stderr
    assert secret not in open_store(uri).read_text("_raynas_run.json")


def test_a_node_that_does_not_see_the_directory_refuses_to_score(tmp_path):
    """A local path on a multi-node cluster: a worker whose node has its own disk sees no
    lock of the driver there, and says what to do instead of scattering parts."""
    from raynas.distributed.actor import ShardScorer, WorkerSetupError

    config = CellScorer("nb201", "params").config()
    worker = ShardScorer(config, "cpu", str(tmp_path / "not-shared"), lease_id="the-drivers-lease")
    with pytest.raises(WorkerSetupError, match=r"is not shared with this node .*--out s3://bucket/run"):
        worker({"cells": [[0]]})
    assert not list((tmp_path).glob("**/part-*.parquet"))
