"""``raynas data import``: the official benchmark files, turned into raynas' accuracy tables.

* NATS-Bench topology (NB201): read with the ``nats_bench`` API (``raynas[benchmarks]``),
  written as ``nb201/ground_truth.parquet`` — the same columns as the shipped table.
* NDS: a DARTS-format record file (``DARTS.json``), written as ``darts/nds_accuracy.parquet``
  (the DARTS-space cells it holds, their final test accuracy; :func:`read_nds`).
* NAS-Bench-101: the official ``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord``,
  read without TensorFlow (TFRecord framing and the two ``model_metrics.proto`` messages
  are small enough to decode here), written as ``nb101/accuracy.parquet``: every cell's
  108-epoch CIFAR-10 test accuracy of its first run (``test_accuracy_single_run``, as in
  the shipped sample) and the mean over its runs.

All land in raynas' cache (resolution order: :mod:`raynas.datafiles`), written atomically.
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


# -- NDS (Radosavovic et al., "On Network Design Spaces for Visual Recognition") -----------

def read_nds(records_file: str | Path) -> tuple[pa.Table, int]:
    """(accuracy table for the ``darts`` space, records skipped) from an NDS record file of
    a DARTS-format space (``DARTS.json``; ENAS, PNAS, NASNet and Amoeba use the same
    genotype format, but only genotypes inside the DARTS space — its seven ops, two distinct
    inputs per node, four concatenated nodes — have a ``darts`` index).

    Each record is read as NDS stores it: ``net.genotype`` (``normal`` and ``reduce`` as
    ``[op, input]`` pairs, ``normal_concat``/``reduce_concat``), ``net.width`` and
    ``net.depth``, and ``test_ep_top1``, the top-1 *error* (%) after each epoch, of which
    the last is taken: accuracy = 100 − error. A genotype NDS trained more than once (at
    several widths or depths) gets the mean of its accuracies, and ``records`` says how many."""
    from raynas.spaces.darts import DartsSpace, format_arch
    from raynas.spaces.darts_network import NODES, OPS

    path = Path(records_file)
    if not path.is_file():
        raise FileNotFoundError(f"NDS file {path} not found")
    try:
        records = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not an NDS record file (not JSON: {exc})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path} is not an NDS record file (a JSON list of records)")
    space, by_cell, skipped = DartsSpace(), {}, 0
    for record in records:
        try:
            genotype = record["net"]["genotype"]
            concat = list(range(2, 2 + NODES))
            if list(genotype["normal_concat"]) != concat or list(genotype["reduce_concat"]) != concat:
                raise ValueError("concat")
            cells = [[(int(i), OPS.index(op)) for op, i in genotype[kind]] for kind in ("normal", "reduce")]
            index = space.index_of(format_arch(*cells))
            accuracy = 100.0 - float(record["test_ep_top1"][-1])
        except (KeyError, TypeError, ValueError, IndexError):
            skipped += 1  # outside the DARTS space, or not a trained record
            continue
        entry = by_cell.setdefault(index, [format_arch(*space.genes(index)), [], []])
        entry[1].append(accuracy)
        entry[2].append(f"{record['net'].get('width', '?')}x{record['net'].get('depth', '?')}")
    if not by_cell:
        raise ValueError(f"{path}: none of its {len(records)} records is a trained DARTS-space network")
    cells = sorted(by_cell)
    return pa.table({
        "index": pa.array(cells, pa.int64()),
        "arch": [by_cell[c][0] for c in cells],
        "accuracy": pa.array([sum(by_cell[c][1]) / len(by_cell[c][1]) for c in cells], pa.float64()),
        "records": pa.array([len(by_cell[c][1]) for c in cells], pa.int32()),
        "width_x_depth": [",".join(by_cell[c][2]) for c in cells],
    }), skipped


def import_nds(records_file: str | Path) -> Path:
    table, skipped = read_nds(records_file)
    if skipped:
        import logging

        logging.getLogger("raynas").warning("%s: %d record(s) outside the DARTS space or without a test error, skipped",
                                            records_file, skipped)
    return write_table_atomic(table, NEEDS["darts-accuracy"].relatives[0])
