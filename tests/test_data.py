"""Where data comes from: the shipped default, the resolution order, fetching CIFAR from a
server on 127.0.0.1 (whole, corrupt, truncated), local copies, importing benchmark files,
and the probe set recorded in the run config."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import struct
import sys
import tarfile
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from raynas import fetch as fetch_module
from raynas.spaces.nb201 import load_ground_truth_table as load_nb201_ground_truth
from raynas.benchmark_import import import_nb101
from raynas.cli import main
from raynas.datafiles import EMBEDDED_DIR, resolve, resolve_need
from raynas.probes import real_batch
from raynas.results import RunConfigMismatch, check_or_write_run_config
from raynas.spec import ScoringSpec


# -- the shipped data -----------------------------------------------------------------------

def test_fresh_machine_resolves_everything_to_the_shipped_data(embedded_only):
    for need in ("nb201-accuracy", "nb101-accuracy", "cifar10-probe", "cifar100-probe"):
        found = resolve_need(need)
        assert found.origin == "embedded" and found.path.is_relative_to(EMBEDDED_DIR)
    truth = load_nb201_ground_truth()
    assert truth.num_rows == 15_625 and truth.column("index").to_pylist() == list(range(15_625))
    assert max(truth.column("cifar10_test").to_pylist()) == pytest.approx(94.373, abs=1e-3)  # cell 6111


@pytest.mark.parametrize("dataset, classes, per_class", [("cifar10", 10, (12, 13)), ("cifar100", 64, (2, 2))])
def test_shipped_probes_serve_the_largest_default_batch(embedded_only, dataset, classes, per_class):
    for seed in (0, 1):
        batch = real_batch(dataset, 128, seed)
        counts = torch.bincount(batch.labels)
        assert len(batch) == 128 and (counts > 0).sum() == classes
        assert per_class[0] <= counts[counts > 0].min() and counts.max() <= per_class[1]
    assert not torch.equal(real_batch(dataset, 128, 0).inputs, real_batch(dataset, 128, 1).inputs)


def test_shipped_tables_equal_the_benchmark_exports(shared_data, monkeypatch):
    shipped = pq.read_table(EMBEDDED_DIR / "nb201/ground_truth.parquet")
    full = pq.read_table(shared_data / "nb201/ground_truth.parquet", columns=shipped.column_names)
    assert shipped.equals(full.cast(shipped.schema))
    # CIFAR-100: the shipped images are the export's training images, so batches are identical.
    shipped_batch = real_batch("cifar100", 128, 0, path=EMBEDDED_DIR / "cifar/cifar100_probe.npz")
    full_batch = real_batch("cifar100", 128, 0, path=shared_data / "cifar/cifar100_probe.npz")
    assert torch.equal(shipped_batch.inputs, full_batch.inputs)


# -- the resolution order -------------------------------------------------------------------

def test_resolution_order_data_dir_then_cache_then_embedded(embedded_only, tmp_path, monkeypatch):
    relative = "nb201/ground_truth.parquet"
    assert resolve(relative).origin == "embedded"
    cached = embedded_only / "data" / relative
    cached.parent.mkdir(parents=True)
    cached.write_bytes((EMBEDDED_DIR / relative).read_bytes())
    assert resolve(relative).path == cached and resolve(relative).origin == "cache"
    user = tmp_path / "mine"
    (user / "nb201").mkdir(parents=True)
    (user / relative).write_bytes(cached.read_bytes())
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(user))
    assert resolve(relative).path == user / relative and resolve(relative).origin == "RAYNAS_DATA_DIR"
    # A need the user's folder lacks still comes from the next root.
    assert resolve_need("cifar10-probe").origin == "embedded"


def test_misspelt_data_dir_is_an_error_not_a_fallback(embedded_only, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(tmp_path / "shraed"))
    with pytest.raises(FileNotFoundError, match=r"RAYNAS_DATA_DIR='.*shraed' is not a folder"):
        resolve_need("nb201-accuracy")


def test_nothing_is_found_by_folder_name(embedded_only, tmp_path, monkeypatch):
    """A ``shared/data`` beside the working directory is not data raynas reads."""
    (tmp_path / "shared" / "data" / "nb201").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "nb201" / "peer_scores.parquet").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nb201/peer_scores.parquet not found.*set RAYNAS_DATA_DIR"):
        resolve("nb201/peer_scores.parquet")


def test_data_status_lists_every_need(embedded_only, capsys):
    assert main(["data", "status"]) == 0
    out = capsys.readouterr().out
    assert "RAYNAS_DATA_DIR → cache" in out
    for need in ("nb201-accuracy", "nb101-accuracy", "cifar10-probe", "cifar100-probe"):
        line = next(l for l in out.splitlines() if l.startswith(need))
        assert "embedded" in line and str(EMBEDDED_DIR) in line
    sha = hashlib.sha256((EMBEDDED_DIR / "cifar/cifar10_probe.npz").read_bytes()).hexdigest()[:16]
    assert sha in out


# -- fetching -------------------------------------------------------------------------------

def make_cifar10_archive(per_batch: int = 20) -> tuple[bytes, np.ndarray]:
    """A tar.gz laid out like the official one (five pickled training batches)."""
    rng = np.random.default_rng(0)
    buffer, all_images = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(1, 6):
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(x) for x in rng.integers(0, 10, per_batch)]
            payload = pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"})
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            all_images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return buffer.getvalue(), np.concatenate(all_images)


class ArchiveServer:
    """Serves ``files`` on 127.0.0.1; ``short`` paths announce more bytes than they send."""

    def __init__(self, files: dict[str, bytes], short: frozenset[str] = frozenset()):
        files_, short_ = files, short

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                name = self.path.lstrip("/")
                if name not in files_:
                    self.send_error(404)
                    return
                body = files_[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (1000 if name in short_ else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cifar10_archive(monkeypatch):
    """A test archive, accepted as the official one (its MD5 stands in for the published)."""
    body, images = make_cifar10_archive()
    archive = fetch_module.ARCHIVES["cifar10"]
    monkeypatch.setitem(fetch_module.ARCHIVES, "cifar10",
                        fetch_module.CifarArchive(**{**archive.__dict__, "md5": hashlib.md5(body).hexdigest()}))
    return body, images


def cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_fetch_downloads_checks_and_writes_the_probe_file(embedded_only, cifar10_archive, capsys):
    body, images = cifar10_archive
    server = ArchiveServer({"cifar-10-python.tar.gz": body})
    try:
        assert main(["data", "fetch", "cifar10", "--base-url", server.url, "-q"]) == 0
    finally:
        server.close()
    assert cache_files(embedded_only) == ["data/cifar/cifar10_probe.npz"]
    found = resolve_need("cifar10-probe")
    assert found.origin == "cache"
    with np.load(found.path) as probe:
        assert np.array_equal(probe["images"], images) and probe["labels"].dtype == np.int16
        assert set(probe["split"]) == {"train"}
    assert "cifar10 probe images →" in capsys.readouterr().out
    assert len(real_batch("cifar10", 16, 0)) == 16  # scorers now draw from the fetched set


def test_a_corrupt_download_is_refused_and_nothing_stays(embedded_only, cifar10_archive, capsys):
    body, _ = cifar10_archive
    corrupt = bytearray(body)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server = ArchiveServer({"cifar-10-python.tar.gz": bytes(corrupt)})
    try:
        assert main(["data", "fetch", "cifar10", "--base-url", server.url, "-q"]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "is not the published" in err and "nothing was written" in err and len(err.splitlines()) == 1
    assert cache_files(embedded_only) == []
    assert resolve_need("cifar10-probe").origin == "embedded"


def test_a_truncated_download_is_refused_and_an_earlier_fetch_is_kept(embedded_only, cifar10_archive, monkeypatch):
    body, images = cifar10_archive
    good = ArchiveServer({"cifar-10-python.tar.gz": body})
    try:
        fetch_module.fetch("cifar10", base_url=good.url, progress=False)
    finally:
        good.close()
    before = resolve_need("cifar10-probe").sha256()
    short = ArchiveServer({"cifar-10-python.tar.gz": body}, short=frozenset({"cifar-10-python.tar.gz"}))
    monkeypatch.setenv("RAYNAS_CIFAR_URL", short.url)  # the base URL from the environment
    try:
        with pytest.raises(fetch_module.CorruptDownload, match="ended early"):
            fetch_module.fetch("cifar10", progress=False)
    finally:
        short.close()
    assert cache_files(embedded_only) == ["data/cifar/cifar10_probe.npz"]
    assert resolve_need("cifar10-probe").sha256() == before


def test_unreachable_server_is_one_line(embedded_only, capsys):
    assert main(["data", "fetch", "cifar100", "--base-url", "http://127.0.0.1:9/", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raynas: error: cannot download http://127.0.0.1:9/cifar-100-python.tar.gz")
    assert cache_files(embedded_only) == []


def test_fetch_from_a_local_archive_or_folder(embedded_only, cifar10_archive, tmp_path):
    body, images = cifar10_archive
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(body)
    path = fetch_module.fetch("cifar10", source=archive, progress=False)
    with np.load(path) as probe:
        assert np.array_equal(probe["images"], images)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    path.unlink()
    for source in (tmp_path / "extracted", tmp_path / "extracted" / "cifar-10-batches-py"):
        with np.load(fetch_module.fetch("cifar10", source=source, progress=False)) as probe:
            assert np.array_equal(probe["images"], images)
    with pytest.raises(FileNotFoundError, match="no data_batch_1"):
        fetch_module.fetch("cifar10", source=tmp_path, progress=False)
    other = tmp_path / "other.tar.gz"
    other.write_bytes(body + b"\0")
    with pytest.raises(fetch_module.CorruptDownload, match="not the published"):
        fetch_module.fetch("cifar10", source=other, progress=False)


# -- importing the official benchmark files -------------------------------------------------

def _pb_double(field: int, value: float) -> bytes:
    return bytes([field << 3 | 1]) + struct.pack("<d", value)


def _pb_bytes(field: int, value: bytes) -> bytes:
    return bytes([field << 3 | 2, len(value)]) + value


def _tfrecord(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + b"\0" * 4 + data + b"\0" * 4


def test_import_nb101_reads_the_official_tfrecord(embedded_only, tmp_path):
    """Records as the benchmark writes them: JSON rows with base64 ModelMetrics protobufs."""
    hashes = ["00005c142e6f48ac74fdcf73e3439874", "0000f2d1e4f4a6e9ac5e7e9c5d7c7f7a"]
    records = b""
    for h, accuracies in zip(hashes, ([0.91, 0.92, 0.93], [0.80, 0.82, 0.84])):
        for epochs in (36, 108):
            for acc in accuracies:
                evaluations = b"".join(_pb_bytes(1, _pb_double(1, e) + _pb_double(5, a if epochs == 108 else 0.1))
                                       for e, a in ((0.0, 0.1), (epochs / 2, 0.5), (float(epochs), acc)))
                metrics = evaluations + bytes([2 << 3]) + bytes([100]) + _pb_double(3, 12.5)
                row = [h, epochs, "0" * 49, "input,output", base64.b64encode(metrics).decode()]
                records += _tfrecord(json.dumps(row).encode())
    source = tmp_path / "nasbench_only108.tfrecord"
    source.write_bytes(records)
    path = import_nb101(source)
    assert path == embedded_only / "data/nb101/accuracy.parquet"
    table = pq.read_table(path).to_pydict()
    assert table["hash"] == hashes and table["runs"] == [3, 3]
    assert table["test_accuracy_single_run"] == [0.91, 0.80]
    assert table["test_accuracy_mean"] == pytest.approx([0.92, 0.82])
    found = resolve_need("nb101-accuracy")
    assert found.origin == "cache" and found.path == path  # the full table wins over the shipped sample
    source.write_bytes(records[:-10])
    with pytest.raises(ValueError, match="truncated TFRecord"):
        import_nb101(source)


def test_import_nats_bench_through_its_api(embedded_only, tmp_path, monkeypatch):
    """A stand-in ``nats_bench`` with the official API's calls; the table it writes is the
    one reports then read."""
    calls = []

    class FakeAPI:
        def __len__(self):
            return 15_625

        def get_more_info(self, i, dataset, hp, is_random):
            calls.append((dataset, hp, is_random))
            return {"test-accuracy": {"cifar10": 90.0, "cifar100": 70.0, "ImageNet16-120": 40.0}[dataset] + i / 1e5}

        def get_cost_info(self, i, dataset, hp):
            return {"params": 0.1 + i / 1e6}

    fake = types.ModuleType("nats_bench")
    fake.create = lambda path, space, fast_mode, verbose: FakeAPI()
    monkeypatch.setitem(sys.modules, "nats_bench", fake)
    source = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    source.mkdir()
    assert main(["data", "import", "nats-bench", str(source)]) == 0
    truth = load_nb201_ground_truth()
    assert truth.num_rows == 15_625 and resolve_need("nb201-accuracy").origin == "cache"
    assert truth.column("cifar100_test")[7].as_py() == pytest.approx(70.00007)
    assert set(calls) == {("cifar10", "200", False), ("cifar100", "200", False), ("ImageNet16-120", "200", False)}


# -- the probe set is part of the run config ------------------------------------------------

def test_run_config_records_the_probe_set_and_refuses_mixing(embedded_only, shared_data, monkeypatch, tmp_path):
    shipped = ScoringSpec.resolve("nb201", "gradalign,params", "cifar10", 0).config()
    assert shipped["probe_data"] == {"dataset": "cifar10", "origin": "embedded",
                                     "sha256": resolve_need("cifar10-probe").sha256()}
    assert "probe_data" not in ScoringSpec.resolve("nb201", "intrain,synflow,params", "cifar10", 0).config()  # data-free
    check_or_write_run_config(tmp_path, shipped, {"raynas": "test"})
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(shared_data))
    full = ScoringSpec.resolve("nb201", "gradalign,params", "cifar10", 0).config()
    assert full["probe_data"]["origin"] == "RAYNAS_DATA_DIR" and full["probe_data"]["sha256"] != shipped["probe_data"]["sha256"]
    with pytest.raises(RunConfigMismatch, match="different scoring configuration"):
        check_or_write_run_config(tmp_path, full, {"raynas": "test"})


def test_a_worker_with_other_probe_data_refuses_to_score(embedded_only, shared_data, monkeypatch, tmp_path):
    from raynas.distributed.actor import ShardScorer, WorkerSetupError

    driver_config = ScoringSpec.resolve("nb201", "naswot", "cifar10", 0).config()
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(shared_data))  # the worker sees another probe file
    worker = ShardScorer(driver_config, "cpu", str(tmp_path))
    with pytest.raises(WorkerSetupError, match="probe_data: run .*'embedded'.*worker .*'RAYNAS_DATA_DIR'"):
        worker({"cells": [[1, 2]]})  # the first shard reports it (a constructor error would be retried)
    assert not list(tmp_path.iterdir())


def test_an_old_run_record_means_the_old_definitions_and_never_mixes_with_new(tmp_path):
    """A record from before the noise thresholds has no noise_tol: it reads back as
    noise_tol=0, a request for the old definition is the same config, the new default is
    refused, and a raynas whose InTrain gave other columns is refused too."""
    from raynas.spec import ScoringSpec

    old = ScoringSpec.resolve("nb201", "intrain:noise_tol=0;zico:noise_tol=0", "cifar10", 0)
    record = old.config()
    assert all("noise_tol" not in p for p in record["proxies"])  # as runs were recorded before
    assert ScoringSpec.from_config(record).proxies[0].options.noise_tol == 0.0
    assert ScoringSpec.from_config(record).config() == record
    new = ScoringSpec.resolve("nb201", "intrain;zico", "cifar10", 0)
    assert new.proxies[0].options.noise_tol > 0 and new.config() != record
    assert new.proxies[0].seed_key == old.proxies[0].seed_key == "intrain"  # thresholds draw nothing

    out = tmp_path
    before = {c: r for c, r in old.column_roles().items() if c != "o_zero_tensors"}  # an older raynas' columns
    check_or_write_run_config(out, record, {"raynas": "0.0.old"}, columns=before)
    check_or_write_run_config(out, record, {"raynas": "0.0.old"}, columns=before)  # resumes itself
    with pytest.raises(RunConfigMismatch, match="different scoring configuration"):
        check_or_write_run_config(out, new.config(), {"raynas": "test"}, columns=new.column_roles())
    with pytest.raises(RunConfigMismatch, match="o_zero_tensors differ"):
        check_or_write_run_config(out, record, {"raynas": "test"}, columns=old.column_roles())


def test_precision_is_recorded_only_when_not_float32():
    from raynas.spec import ScoringSpec

    assert "precision" not in ScoringSpec.resolve("nb201", "params").config()
    exact = ScoringSpec.resolve("nb201", "params", precision="float64")
    assert exact.config()["precision"] == "float64"
    assert ScoringSpec.from_config(exact.config()).config() == exact.config()
    with pytest.raises(ValueError, match="precision must be one of"):
        ScoringSpec.resolve("nb201", "params", precision="float16")
