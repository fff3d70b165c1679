"""NAS-Bench-101: 423,624 unique cells, indexed in ascending order of the benchmark hash.

The cell table is enumerated on first use (a few minutes on 2 cores) and cached as Parquet
in the user cache directory (``RAYNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/raynas`` or
``~/.cache/raynas``); later loads take about a second. An arch string is the cell's hash.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from torch import nn

from raynas.atomic import atomic_target
from raynas.datafiles import cache_dir
from raynas.spaces.base import GroundTruth, check_index

from raynas.spaces.nb101_graph import INPUT, OPS, OUTPUT, enumerate_cells, prune, spec_hash, validate_spec

NUM_CELLS = 423_624
CACHE_NAME = "nb101_cells_v2.parquet"  # v2: the benchmark's representative of each class
_HASH = re.compile(r"^[0-9a-f]{32}$")


def build_cell_table(path: Path, processes: int | None = None) -> pa.Table:
    """Enumerate the space and write the cache atomically."""
    cells = enumerate_cells(processes)
    table = pa.table({
        "hash": [c[0] for c in cells],
        "n_vertices": pa.array([c[1] for c in cells], pa.int8()),
        "rows": pa.array([list(c[2]) + [0] * (7 - len(c[2])) for c in cells], pa.list_(pa.uint8(), 7)),
        "ops": ["".join(map(str, c[3])) for c in cells],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp)
    return table


@functools.cache
def cell_table() -> pa.Table:
    path = cache_dir() / CACHE_NAME
    if not path.is_file():
        print(f"raynas: building the NB101 cell table once (about 3 min on 2 cores), cached at {path}",
              file=sys.stderr, flush=True)
    table = pq.read_table(path) if path.is_file() else build_cell_table(path)
    if table.num_rows != NUM_CELLS:
        raise RuntimeError(f"NB101 cell cache {path} holds {table.num_rows} cells, expected {NUM_CELLS}; delete it")
    return table


@functools.cache
def _hash_index() -> dict[str, int]:
    return {h: i for i, h in enumerate(cell_table().column("hash").to_pylist())}


class NB101Space:
    """NAS-Bench-101 behind the :class:`~raynas.spaces.base.SearchSpace` interface."""

    name = "nb101"

    def __len__(self) -> int:
        return NUM_CELLS

    def spec(self, index: int) -> tuple[np.ndarray, list[str]]:
        """(adjacency matrix, ops) of a cell, pruned as the benchmark stores it."""
        row = cell_table().slice(self._check_index(index), 1).to_pylist()[0]
        n = row["n_vertices"]
        matrix = np.array([[row["rows"][v] >> w & 1 for w in range(n)] for v in range(n)], dtype=np.int64)
        return matrix, [INPUT, *(OPS[int(c)] for c in row["ops"]), OUTPUT]

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, str) and not _HASH.match(arch) and arch.strip().isdigit():
            arch = int(arch)  # an index given as text (a 32-digit string is a hash)
        if not isinstance(arch, str):
            return self._check_index(arch)
        if not _HASH.match(arch):
            raise ValueError(f"NB101 arch {arch!r} is neither an index nor a 32-hex-digit cell hash")
        if arch not in _hash_index():
            raise ValueError(f"NB101 hash {arch!r} is not a cell of the space")
        return _hash_index()[arch]

    def index_of_spec(self, matrix: np.ndarray, ops: list[str]) -> int:
        """Index of an (adjacency, ops) spec; pruned first, isomorphs map to one index."""
        validate_spec(matrix, ops)
        return self.index_of(spec_hash(*prune(matrix, ops)))

    def arch_str(self, index: int) -> str:
        return cell_table().column("hash")[self._check_index(index)].as_py()

    def is_degenerate(self, index: int) -> bool:
        return False  # every enumerated cell has an input→output path

    def ground_truth(self) -> GroundTruth:
        """CIFAR-10 test accuracy after 108 epochs (one training run), for the cells the
        resolved ``nb101-accuracy`` table holds: the shipped 5,000-cell sample, or every
        cell once ``raynas data import nb101`` has read the official file."""
        return GroundTruth(load_ground_truth_table(), {"cifar10": "test_accuracy_single_run"})

    def mutate(self, index: int, rng, max_tries: int = 100) -> int:
        """Flip one edge or change one interior op (half the time each), on the cell padded
        back to 7 vertices (so that an edge may bring in a new vertex), until the result is
        a valid cell (input→output path, at most 9 edges) of another class: the mutation of
        NB101's regularized evolution, deduplicated by the benchmark hash."""
        from raynas.spaces.nb101_graph import MAX_VERTICES, prune, spec_hash

        matrix, ops = self.spec(index)
        n = len(ops)
        padded = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
        keep = [*range(n - 1), MAX_VERTICES - 1]  # the new vertices go before the output
        padded[np.ix_(keep, keep)] = matrix
        padded_ops = [*ops[:-1], *(OPS[int(rng.integers(len(OPS)))] for _ in range(MAX_VERTICES - n)), ops[-1]]
        for _ in range(max_tries):
            m, o = padded.copy(), list(padded_ops)
            if rng.random() < 0.5:
                src, dst = sorted(rng.choice(MAX_VERTICES, size=2, replace=False))
                m[src, dst] ^= 1
            else:
                vertex = int(rng.integers(1, MAX_VERTICES - 1))
                o[vertex] = [op for op in OPS if op != o[vertex]][int(rng.integers(len(OPS) - 1))]
            if m.sum() > 9:
                continue
            try:
                child = self.index_of(spec_hash(*prune(m, o)))
            except ValueError:  # no input→output path, or not a cell of the space
                continue
            if child != index:
                return child
        raise RuntimeError(f"no valid mutation of NB101 cell {index} in {max_tries} tries")

    def build(self, index: int, num_classes: int) -> nn.Module:
        from raynas.spaces.nb101_network import NB101Network

        return NB101Network(*self.spec(index), num_classes=num_classes)

    def example(self) -> str:
        return self.arch_str(0)

    def _check_index(self, index: int) -> int:
        return check_index("NB101", index, NUM_CELLS)


def load_ground_truth_table(path: str | Path | None = None) -> pa.Table:
    """The resolved ``nb101-accuracy`` table (or ``path``: a table with ``hash`` and accuracy
    columns) with an ``index`` column added."""
    from raynas.datafiles import resolve_need

    table = pq.read_table(Path(path) if path else resolve_need("nb101-accuracy").path)
    space = NB101Space()
    index = [space.index_of(h) for h in table.column("hash").to_pylist()]
    return table.add_column(0, "index", pa.array(index, pa.int64()))
