"""The DARTS cell space (Liu et al., ICLR 2019), as NAS-Bench-301 trained it: a normal and
a reduction cell, each four nodes that sum two ops (of 7) on two distinct earlier nodes or
inputs; networks as :mod:`raynas.spaces.darts_network` builds them.

Arch strings are NAS-Bench-Suite-Zero's compact form, ``[[(input, op), ...8], [...8]]`` —
the normal cell, then the reduction cell; pairs 2k and 2k+1 feed node k; input 0 is the cell
two back, 1 the previous one, 2.. the cell's own nodes; ops index
:data:`raynas.spaces.darts_network.OPS`. A node's two pairs are a sum, so their order does
not matter: the canonical string lists the smaller input first, and any order is accepted.

Ground truth: NAS-Bench-Suite-Zero's 725 genotypes with NAS-Bench-301's **surrogate**
prediction of their CIFAR-10 validation accuracy (shipped), or, after ``raynas data import
nds DARTS.json``, NDS's trained DARTS-space networks (their own widths and depths; raynas
scores the NB301 network of each genotype).

Index: each cell's four nodes in mixed radix (node k: which two of its k+2 inputs, then the
two ops), normal cell first — 1,037,664,180 cells of each kind, 1.08·10¹⁸ networks in all,
within an int64.
"""

from __future__ import annotations

import ast
import math
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from raynas.spaces.base import GroundTruth, check_index
from raynas.spaces.darts_network import NODES, OPS

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn

Genes = tuple[tuple[int, int], ...]  # eight (input, op) pairs
PAIRS = [list(combinations(range(k + 2), 2)) for k in range(NODES)]  # node k's input pairs, in order
RADICES = [len(p) * len(OPS) ** 2 for p in PAIRS]
CELLS_PER_KIND = math.prod(RADICES)
NUM_CELLS = CELLS_PER_KIND**2
ACCURACY_OF = {"cifar10": "accuracy"}  # CIFAR-10 accuracy (%): NB301's surrogate, or NDS's trained networks


def canonical(genes: Genes) -> Genes:
    """Each node's two pairs with the smaller input first."""
    return tuple(pair for k in range(NODES) for pair in sorted(genes[2 * k: 2 * k + 2]))


def cell_code(genes: Genes) -> int:
    """A cell's mixed-radix code (node 0 the least significant digit)."""
    genes, code = canonical(genes), 0
    for k in reversed(range(NODES)):
        (a, op_a), (b, op_b) = genes[2 * k: 2 * k + 2]
        digit = PAIRS[k].index((a, b)) * len(OPS) ** 2 + op_a * len(OPS) + op_b
        code = code * RADICES[k] + digit
    return code


def cell_genes(code: int) -> Genes:
    genes = []
    for k in range(NODES):
        code, digit = divmod(code, RADICES[k])
        pair, ops = divmod(digit, len(OPS) ** 2)
        (a, b), (op_a, op_b) = PAIRS[k][pair], divmod(ops, len(OPS))
        genes += [(a, op_a), (b, op_b)]
    return tuple(genes)


def parse_arch(arch: str) -> tuple[Genes, Genes]:
    """(normal, reduction) genes of a compact-form string; a ValueError naming it otherwise."""
    try:
        value = ast.literal_eval(arch.strip())
        cells = tuple(tuple((int(i), int(op)) for i, op in cell) for cell in value)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"malformed DARTS arch {arch!r}: expected [[(input, op) x8], [(input, op) x8]] ({exc})") from None
    if len(cells) != 2 or any(len(cell) != 2 * NODES for cell in cells):
        raise ValueError(f"malformed DARTS arch {arch!r}: needs two cells of {2 * NODES} (input, op) pairs")
    for cell in cells:
        for k in range(NODES):
            (a, op_a), (b, op_b) = cell[2 * k: 2 * k + 2]
            if not (0 <= a < k + 2 and 0 <= b < k + 2 and a != b) or not {op_a, op_b} <= set(range(len(OPS))):
                raise ValueError(f"malformed DARTS arch {arch!r}: node {k} needs two distinct inputs in 0..{k + 1} "
                                 f"and ops in 0..{len(OPS) - 1}, got {cell[2 * k: 2 * k + 2]}")
    return canonical(cells[0]), canonical(cells[1])


def format_arch(normal: Genes, reduce: Genes) -> str:
    return str([list(normal), list(reduce)])


def load_ground_truth_table(path: str | Path | None = None) -> "pa.Table":
    """Accuracy per cell index (column ``accuracy``): NDS's trained networks where
    ``raynas data import nds`` wrote them, else the shipped 725 NAS-Bench-301 genotypes
    (their surrogate ``val_accuracy``, with params and FLOPs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raynas.datafiles import resolve_need

    table = pq.read_table(Path(path) if path else resolve_need("darts-accuracy").path)
    if "val_accuracy" in table.column_names:  # NAS-Bench-301's surrogate
        table = table.rename_columns(["accuracy" if c == "val_accuracy" else c for c in table.column_names])
    if "index" not in table.column_names:
        space = DartsSpace()
        index = [space.index_of(a) for a in table.column("arch").to_pylist()]
        table = table.add_column(0, "index", pa.array(index, pa.int64()))
    return table.sort_by("index")


class DartsSpace:
    """The DARTS / NAS-Bench-301 cell space behind the :class:`~raynas.spaces.base.SearchSpace`
    interface (too large to score whole: choose cells with ``--cells`` or ``--sample``)."""

    name = "darts"

    def __len__(self) -> int:
        return NUM_CELLS

    def genes(self, index: int) -> tuple[Genes, Genes]:
        normal, reduce = divmod(check_index("DARTS", index, NUM_CELLS), CELLS_PER_KIND)
        return cell_genes(normal), cell_genes(reduce)

    def index_of(self, arch: int | str) -> int:
        if not isinstance(arch, str):
            return check_index("DARTS", arch, NUM_CELLS)
        normal, reduce = parse_arch(arch)
        return cell_code(normal) * CELLS_PER_KIND + cell_code(reduce)

    def arch_str(self, index: int) -> str:
        return format_arch(*self.genes(index))

    def is_degenerate(self, index: int) -> bool:
        self.genes(index)  # a bad index is an error here too
        return False  # every op passes its input on (the space has no zero op)

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(load_ground_truth_table(), dict(ACCURACY_OF))

    def build(self, index: int, num_classes: int) -> "nn.Module":
        from raynas.spaces.darts_network import DartsNetwork

        return DartsNetwork(*self.genes(index), num_classes=num_classes)

    def mutate(self, index: int, rng) -> int:
        """One pair of one cell changed: its input to another that keeps the node's two
        inputs distinct, or its op to another (NASLib's NB301 mutation)."""
        cells = [list(cell) for cell in self.genes(index)]
        cell = cells[int(rng.integers(2))]
        position = int(rng.integers(2 * NODES))
        node, (source, op) = position // 2, cell[position]
        other_inputs = [i for i in range(node + 2) if i not in (source, cell[position ^ 1][0])]
        if other_inputs and rng.random() < 0.5:  # node 0 reads both inputs: only its ops can change
            source = other_inputs[int(rng.integers(len(other_inputs)))]
        else:
            op = [o for o in range(len(OPS)) if o != op][int(rng.integers(len(OPS) - 1))]
        cell[position] = (source, op)
        return self.index_of(format_arch(tuple(cells[0]), tuple(cells[1])))

    def heaviest_cell(self) -> int:
        """Every op a 5×5 separable convolution, both cells: the most parameters (for GPU packing)."""
        genes = tuple((i, OPS.index("sep_conv_5x5")) for k in range(NODES) for i in (0, 1))
        return cell_code(genes) * CELLS_PER_KIND + cell_code(genes)

    def example(self) -> str:
        return self.arch_str(0)
