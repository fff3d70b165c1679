"""Results on object storage (issue 12), against real endpoints on 127.0.0.1 that the tests
start themselves, each test once per store:

- **S3**: moto's threaded server (moto[server]), which speaks the S3 REST protocol —
  including conditional PUTs (If-None-Match, If-Match) — keeping objects in memory. It does
  not emulate S3's consistency and latency, IAM policies or request signing checks. raynas
  talks to it exactly as to AWS: pyarrow.fs for parts, boto3 for the conditional writes,
  both configured only through the environment (AWS_ENDPOINT_URL).
- **GCS**: gcp-storage-emulator, which speaks GCS's JSON API (uploads, listing with
  delimiters, downloads, copies, deletes), in memory. It ignores generation preconditions,
  so the fixture adds GCS's documented rule to its upload handler: ``ifGenerationMatch=0``
  succeeds only if no live object has the name, ``=N`` only if the live object's generation
  is N, else 412 Precondition Failed; the emulator serves one request at a time, so the
  check and the write are atomic as on GCS. What this tests is that raynas sends the
  preconditions and acts on a refusal, not Google's implementation of them. raynas talks to
  it as to GCS, configured only through the environment (STORAGE_EMULATOR_HOST).
"""

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from http import HTTPStatus

import pyarrow as pa
import pytest

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
gcs_emulator = pytest.importorskip("gcp_storage_emulator.server")
pytest.importorskip("google.cloud.storage")

from raynas.lock import LOCK_FILE, OutputLocked, acquire_lock  # noqa: E402
from raynas.results import (RunConfigMismatch, check_or_write_run_config, load_results, scan_results,  # noqa: E402
                            write_part_atomic)
from raynas.scoring import CellScorer  # noqa: E402
from raynas.storage import open_store  # noqa: E402

CHEAP = "intrain:batch_size=8,resolution=16;params"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def environment(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def s3_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "raynas-test",
           "AWS_SECRET_ACCESS_KEY": "raynas-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with environment(env):
            boto3.client("s3").create_bucket(Bucket="bkt")
            yield env
    finally:
        server.stop()


def with_generation_preconditions(upload):
    """GCS's rule for uploads with ``ifGenerationMatch`` (see the module doc)."""
    from gcp_storage_emulator.exceptions import NotFound

    def checked(request, response, storage, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        if wanted:
            name = request.query.get("name", [None])[0] or request.data["meta"]["name"]
            try:
                live = str(storage.get_file_obj(request.params["bucket_name"], name)["generation"])
            except NotFound:
                live = "0"
            if live != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet",
                                         "errors": [{"reason": "conditionNotMet", "message": "Precondition Failed"}]}})
                return None
        return upload(request, response, storage, *args, **kwargs)

    return checked


@contextlib.contextmanager
def gcs_server():
    from gcp_storage_emulator.handlers import objects

    routes = [methods for _, methods in gcs_emulator.HANDLERS if methods.get("POST") is objects.insert]
    for methods in routes:
        methods["POST"] = with_generation_preconditions(objects.insert)
    server = gcs_emulator.create_server("127.0.0.1", free_port(), in_memory=True, default_bucket="bkt")
    server.start()
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{server._api._port}", "GOOGLE_CLOUD_PROJECT": "raynas-test"}
    try:
        with environment(env):
            yield env
    finally:
        server.stop()
        for methods in routes:
            methods["POST"] = objects.insert


SERVERS = {"s3": s3_server, "gs": gcs_server}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def endpoint(request):
    """(scheme, the environment that points clients at the local endpoint)."""
    with SERVERS[request.param]() as env:
        yield request.param, env


def raw_cells(uri: str) -> list[int]:
    """Every row's cell over every part object, counted raw (readers would hide duplicates)."""
    store = open_store(uri)
    scan = scan_results(store)
    assert not scan.rejected, scan.rejected
    return [c for p in scan.accepted for c in store.read_table(p.name, ["index"]).column("index").to_pylist()]


def test_the_run_record_is_created_once_and_a_second_config_is_refused(endpoint):
    uri = f"{endpoint[0]}://bkt/claim"
    first = CellScorer("nb201", "params").config()
    check_or_write_run_config(uri, first, {"raynas": "test"})
    check_or_write_run_config(uri, first, {"raynas": "test"})  # the same config: fine
    with pytest.raises(RunConfigMismatch, match="holds results of a different scoring configuration"):
        check_or_write_run_config(uri, CellScorer("nb201", "flops").config(), {"raynas": "test"})
    store = open_store(uri)
    assert not store.create("_raynas_run.json", b"{}")  # If-None-Match: * / ifGenerationMatch=0 refused it
    assert json.loads(store.read_text("_raynas_run.json"))["config"] == first


def test_a_stale_lock_is_taken_over_and_its_old_holder_notices(endpoint):
    uri = f"{endpoint[0]}://bkt/locked"
    lease = acquire_lock(uri, stale_after_s=1.0)
    with pytest.raises(OutputLocked, match="taken over after 1 s without one"):
        acquire_lock(uri, stale_after_s=1.0)
    assert lease.renew()  # a live holder keeps it
    time.sleep(1.5)  # no heartbeat: the lease goes stale
    taken = acquire_lock(uri, stale_after_s=1.0)
    assert taken.id != lease.id
    assert not lease.renew() and lease.lost  # the old ETag / generation no longer matches: it stops
    with pytest.raises(RuntimeError, match="another driver took over"):
        lease.check()
    taken.release()
    assert not open_store(uri).exists(LOCK_FILE)


def test_parts_and_readers_on_object_storage(endpoint):
    uri = f"{endpoint[0]}://bkt/readers"
    scorer = CellScorer("nb201", "params")
    rows = list(scorer.iter_scores([0, 1, 2]))
    from raynas.rows import row_schema, rows_to_table

    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), uri, "part-0000000-a.parquet")
    check_or_write_run_config(uri, scorer.config(), {"raynas": "test"})
    open_store(uri).write_bytes("notes.txt", b"a stray file")
    table = load_results(uri)
    assert table.column("index").to_pylist() == [0, 1, 2]
    from raynas.cli import main

    assert main(["check", uri, "--quarantine"]) == 0
    assert open_store(uri).exists("_quarantine/notes.txt") and not open_store(uri).exists("notes.txt")


@pytest.mark.ray
@pytest.mark.e2e
def test_score_kill_resume_report_on_object_storage(endpoint, tmp_path):
    scheme, endpoint_env = endpoint
    uri = f"{scheme}://bkt/run"
    cmd = [sys.executable, "-m", "raynas.cli", "score", "nb201", "--proxies", CHEAP, "--out", uri,
           "--limit", "24", "--shard-size", "2", "--progress-interval", "1"]
    env = {**os.environ, **endpoint_env}
    log = tmp_path / "first-driver.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 900  # a bound on a hang, not a timing test
    while time.time() < deadline and len(scan_results(uri).accepted) < 2 and proc.poll() is None:
        time.sleep(0.3)
    assert proc.poll() is None, "the driver ended before it could be killed:\n" + log.read_text()[-3000:]
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
    for secret in (endpoint_env.get("AWS_SECRET_ACCESS_KEY"), endpoint_env.get("STORAGE_EMULATOR_HOST")):
        if secret:  # credentials and endpoints are neither printed nor recorded
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
