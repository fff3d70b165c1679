"""``raynas data import``: the official benchmark files, turned into raynas' accuracy tables.

* NATS-Bench topology (NB201): read with the ``nats_bench`` API (``raynas[benchmarks]``),
  written as ``nb201/ground_truth.parquet`` — the same columns as the shipped table.
* NAS-Bench-101: the official ``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord``,
  read without TensorFlow (TFRecord framing and the two ``model_metrics.proto`` messages
  are small enough to decode here), written as ``nb101/accuracy.parquet``: every cell's
  108-epoch CIFAR-10 test accuracy of its first run (``test_accuracy_single_run``, as in
  the shipped sample) and the mean over its runs.

Both land in raynas' cache (resolution order: :mod:`raynas.datafiles`), written atomically.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.atomic import atomic_target
from raynas.datafiles import NEEDS, fetched_dir

# NATS-Bench's dataset names → the columns of raynas' NB201 table (raynas.spaces.nb201.ACCURACY_OF).
NB201_ACCURACY_COLUMNS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test",
                          "ImageNet16-120": "imagenet16_120_test"}


def write_table_atomic(table: pa.Table, relative: str) -> Path:
    target = fetched_dir() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


# -- NATS-Bench ---------------------------------------------------------------------------

def read_nats_bench(benchmark_file: str | Path, hp: str = "200") -> pa.Table:
    """The NB201 accuracy table from an official NATS-Bench tss file (means over seeds)."""
    try:
        from nats_bench import create
    except ImportError:
        raise ImportError("reading NATS-Bench files needs the benchmarks extra: pip install 'raynas[benchmarks]'") from None
    if not Path(benchmark_file).exists():
        raise FileNotFoundError(f"NATS-Bench file {benchmark_file} not found")
    api = create(str(benchmark_file), "tss", fast_mode=True, verbose=False)
    columns: dict[str, list] = {"index": [], **{c: [] for c in NB201_ACCURACY_COLUMNS.values()}, "params_mb": []}
    for i in range(len(api)):
        columns["index"].append(i)
        for dataset, column in NB201_ACCURACY_COLUMNS.items():
            columns[column].append(float(api.get_more_info(i, dataset, hp=hp, is_random=False)["test-accuracy"]))
        columns["params_mb"].append(float(api.get_cost_info(i, "cifar10", hp=hp)["params"]))
    return pa.table({"index": pa.array(columns.pop("index"), pa.int32()),
                     **{k: pa.array(v, pa.float64()) for k, v in columns.items()}})


def import_nats_bench(benchmark_file: str | Path) -> Path:
    table = read_nats_bench(benchmark_file)
    if table.num_rows != 15_625:
        raise ValueError(f"{benchmark_file}: {table.num_rows} cells, NATS-Bench tss has 15,625")
    return write_table_atomic(table, NEEDS["nb201-accuracy"].relatives[0])


# -- NAS-Bench-101 ------------------------------------------------------------------------

def tfrecords(path: str | Path) -> Iterator[bytes]:
    """The records of a TFRecord file: each is u64 length, u32 CRC, data, u32 CRC (the
    CRCs are not checked; a short read is an error)."""
    with open(path, "rb") as f:
        while header := f.read(12):
            if len(header) < 12:
                raise ValueError(f"{path}: truncated TFRecord header")
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise ValueError(f"{path}: truncated TFRecord")
            yield data


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def protobuf_fields(buf: bytes) -> Iterator[tuple[int, int | float | bytes]]:
    """(field number, value) of a protobuf message: varints as int, fixed64 as double,
    length-delimited as bytes (the wire types model_metrics.proto uses)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            (value,) = struct.unpack_from("<d", buf, pos)
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            (value,) = struct.unpack_from("<f", buf, pos)
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def final_test_accuracy(raw_metrics: str) -> float:
    """``ModelMetrics.evaluation_data[-1].test_accuracy`` (field 1, then field 5)."""
    evaluations = [v for n, v in protobuf_fields(base64.b64decode(raw_metrics)) if n == 1]
    if not evaluations:
        raise ValueError("NB101 record without evaluation data")
    return next((float(v) for n, v in protobuf_fields(evaluations[-1]) if n == 5), float("nan"))


def read_nb101(tfrecord: str | Path, epochs: int = 108) -> pa.Table:
    """Per cell hash: the first run's and the mean test accuracy after ``epochs`` epochs."""
    runs: dict[str, list[float]] = {}
    for record in tfrecords(tfrecord):
        module_hash, record_epochs, _adjacency, _ops, raw_metrics = json.loads(record.decode("utf-8"))
        if int(record_epochs) == epochs:
            runs.setdefault(module_hash, []).append(final_test_accuracy(raw_metrics))
    if not runs:
        raise ValueError(f"{tfrecord}: no {epochs}-epoch records (is it an NB101 .tfrecord file?)")
    hashes = sorted(runs)
    return pa.table({
        "hash": hashes,
        "test_accuracy_single_run": pa.array([runs[h][0] for h in hashes], pa.float64()),
        "test_accuracy_mean": pa.array([sum(runs[h]) / len(runs[h]) for h in hashes], pa.float64()),
        "runs": pa.array([len(runs[h]) for h in hashes], pa.int8()),
    })


def import_nb101(tfrecord: str | Path) -> Path:
    if not Path(tfrecord).is_file():
        raise FileNotFoundError(f"NB101 file {tfrecord} not found")
    return write_table_atomic(read_nb101(tfrecord), NEEDS["nb101-accuracy"].relatives[0])
