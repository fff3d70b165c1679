"""NAS-Bench-201 (= NATS-Bench topology search space): 15,625 cells.

A cell is a DAG on 4 nodes; each of its 6 edges carries one of 5 ops. The official index ↔
arch-string order ships with raynas (``data/nb201_cells.txt``, exported from the official
API), so no benchmark file is needed to enumerate or build the space.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from raynas.spaces.base import GroundTruth, check_index
from raynas.spaces.nb201_cell import EDGES, OPS

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn

NUM_CELLS = 15_625
# Accuracy column of each dataset in the NB201 accuracy table (test accuracy, 200 epochs).
ACCURACY_OF = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "imagenet16-120": "imagenet16_120_test"}


def load_ground_truth_table(path: str | Path | None = None) -> "pa.Table":
    """NB201 accuracies per cell index: ``path``, else the resolved ``nb201-accuracy`` table
    (:mod:`raynas.datafiles`: the user's folder, an imported NATS-Bench file, or the shipped copy)."""
    import pyarrow.parquet as pq

    from raynas.datafiles import resolve_need

    return pq.read_table(Path(path) if path else resolve_need("nb201-accuracy").path)


def parse_arch(arch: str) -> tuple[str, ...]:
    """The six edge ops of an arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    Raises ValueError naming the string when it is malformed.
    """
    if not isinstance(arch, str):
        raise ValueError(f"NB201 arch must be a string, got {type(arch).__name__}: {arch!r}")
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise ValueError(f"malformed NB201 arch string {arch!r}: expected 3 '+'-separated nodes")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"malformed NB201 arch string {arch!r}: node {node!r} must be |...|")
        edges = node[1:-1].split("|")
        if len(edges) != target:
            raise ValueError(
                f"malformed NB201 arch string {arch!r}: node {target} needs {target} edges, got {len(edges)}"
            )
        for source, edge in enumerate(edges):
            op, _, src = edge.partition("~")
            if op not in OPS:
                raise ValueError(f"malformed NB201 arch string {arch!r}: unknown op {op!r} (ops: {OPS})")
            if src != str(source):
                raise ValueError(
                    f"malformed NB201 arch string {arch!r}: edge {edge!r} must come from node {source}"
                )
            ops.append(op)
    return tuple(ops)


def format_arch(ops: tuple[str, ...]) -> str:
    """The arch string of six edge ops (inverse of :func:`parse_arch`)."""
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(f"NB201 cell needs 6 ops from {OPS}, got {ops!r}")
    parts, k = [], 0
    for target in (1, 2, 3):
        parts.append("|" + "|".join(f"{ops[k + s]}~{s}" for s in range(target)) + "|")
        k += target
    return "+".join(parts)


def has_input_output_path(ops: tuple[str, ...]) -> bool:
    """Whether some chain of non-``none`` edges links node 0 to node 3."""
    reachable = {0}
    for (target, source), op in zip(EDGES, ops):
        if op != "none" and source in reachable:
            reachable.add(target)
    return 3 in reachable


@functools.cache
def _index_table() -> tuple[tuple[tuple[str, ...], ...], dict[tuple[str, ...], int]]:
    text = resources.files("raynas.spaces").joinpath("data/nb201_cells.txt").read_text()
    cells = tuple(
        tuple(OPS[int(c)] for c in line) for line in text.splitlines() if line and not line.startswith("#")
    )
    if len(cells) != NUM_CELLS:
        raise RuntimeError(f"raynas install is broken: nb201_cells.txt has {len(cells)} cells")
    return cells, {ops: i for i, ops in enumerate(cells)}


class NB201Space:
    """NAS-Bench-201 behind the :class:`~raynas.spaces.base.SearchSpace` interface."""

    name = "nb201"

    def __len__(self) -> int:
        return NUM_CELLS

    def ops(self, index: int) -> tuple[str, ...]:
        return _index_table()[0][self._check_index(index)]

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, str) and arch.strip().lstrip("-").isdigit():
            arch = int(arch)
        if not isinstance(arch, str):
            return self._check_index(arch)
        return _index_table()[1][parse_arch(arch)]

    def arch_str(self, index: int) -> str:
        return format_arch(self.ops(index))

    def is_degenerate(self, index: int) -> bool:
        return not has_input_output_path(self.ops(index))

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(load_ground_truth_table(), dict(ACCURACY_OF))

    def build(self, index: int, num_classes: int) -> "nn.Module":
        from raynas.spaces.nb201_network import TinyNetwork

        return TinyNetwork(self.ops(index), num_classes=num_classes)

    def mutate(self, index: int, rng) -> int:
        """One edge's op changed to another (the mutation of REA on NB201); ``rng`` is a
        ``numpy.random.Generator``."""
        ops = list(self.ops(index))
        edge = int(rng.integers(len(ops)))
        ops[edge] = [op for op in OPS if op != ops[edge]][int(rng.integers(len(OPS) - 1))]
        return _index_table()[1][tuple(ops)]

    def heaviest_cell(self) -> int:
        """Every edge a 3×3 convolution: the most parameters and activation memory."""
        return self.index_of("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")

    def example(self) -> str:
        return self.arch_str(0)

    def _check_index(self, index: int) -> int:
        return check_index("NB201", index, NUM_CELLS)
