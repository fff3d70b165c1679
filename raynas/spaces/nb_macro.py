"""NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monto-Carlo Tree
Search", CVPR 2021): 6,561 MobileNetV2-block networks on CIFAR-10, every one trained three
times. A cell is eight layer choices, each ``id``, ``ir_3x3_t3`` or ``ir_5x5_t6``
(:mod:`raynas.spaces.nb_macro_network`); the benchmark codes it as eight digits 0/1/2, and
its cell order is that code read in base 3 (cell 0 ``00000000`` … cell 6560 ``22222222``).

Arch strings name the ops, ``id+ir_3x3_t3+...`` (eight, ``+``-separated), so that they are
never mistaken for an index; :meth:`NBMacroSpace.index_of` also takes the benchmark's
8-digit code as a string. No cell is degenerate: an identity layer still passes the input on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from raynas.spaces.base import GroundTruth, check_index

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn

OPS = ("id", "ir_3x3_t3", "ir_5x5_t6")
LAYERS = 8
NUM_CELLS = len(OPS) ** LAYERS
ACCURACY_OF = {"cifar10": "mean_acc"}  # test accuracy (%), mean of the benchmark's three runs


def code_of(index: int) -> str:
    """The benchmark's code of cell ``index``: its base-3 digits, most significant first."""
    digits = []
    for _ in range(LAYERS):
        index, digit = divmod(index, len(OPS))
        digits.append(str(digit))
    return "".join(reversed(digits))


def parse_arch(arch: str) -> int:
    """The index of ``id+ir_3x3_t3+...`` or of the benchmark's code ``01200122``; a
    ValueError naming the string otherwise."""
    text = arch.strip()
    if len(text) == LAYERS and set(text) <= {"0", "1", "2"}:
        return int(text, len(OPS))
    ops = text.split("+")
    if len(ops) != LAYERS or any(op not in OPS for op in ops):
        raise ValueError(f"malformed NAS-Bench-Macro arch {arch!r}: expected {LAYERS} ops from {OPS} joined by '+' "
                         "(or the benchmark's 8-digit code)")
    return int("".join(str(OPS.index(op)) for op in ops), len(OPS))


def load_ground_truth_table(path: str | Path | None = None) -> "pa.Table":
    """Per cell index: the three runs' test accuracy, their mean, params and FLOPs, as the
    benchmark states them (the resolved ``nb_macro-accuracy`` file; shipped with raynas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raynas.datafiles import resolve_need

    table = pq.read_table(Path(path) if path else resolve_need("nb_macro-accuracy").path)
    index = [parse_arch(code) for code in table.column("arch").to_pylist()]
    return table.add_column(0, "index", pa.array(index, pa.int64())).sort_by("index")


class NBMacroSpace:
    """NAS-Bench-Macro behind the :class:`~raynas.spaces.base.SearchSpace` interface."""

    name = "nb_macro"

    def __len__(self) -> int:
        return NUM_CELLS

    def choices(self, index: int) -> tuple[int, ...]:
        """The eight layer choices (0 ``id``, 1 ``ir_3x3_t3``, 2 ``ir_5x5_t6``)."""
        return tuple(int(d) for d in code_of(check_index("NAS-Bench-Macro", index, NUM_CELLS)))

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, str):
            return parse_arch(arch)
        return check_index("NAS-Bench-Macro", arch, NUM_CELLS)

    def arch_str(self, index: int) -> str:
        return "+".join(OPS[c] for c in self.choices(index))

    def is_degenerate(self, index: int) -> bool:
        self.choices(index)  # a bad index is an error here too
        return False

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(load_ground_truth_table(), dict(ACCURACY_OF))

    def build(self, index: int, num_classes: int) -> "nn.Module":
        from raynas.spaces.nb_macro_network import MacroNetwork

        return MacroNetwork(self.choices(index), num_classes=num_classes)

    def mutate(self, index: int, rng) -> int:
        """One layer's op changed to another; ``rng`` is a ``numpy.random.Generator``."""
        choices = list(self.choices(index))
        layer = int(rng.integers(LAYERS))
        choices[layer] = [c for c in range(len(OPS)) if c != choices[layer]][int(rng.integers(len(OPS) - 1))]
        return int("".join(map(str, choices)), len(OPS))

    def heaviest_cell(self) -> int:
        """Every layer ``ir_5x5_t6``: the most parameters and activation memory."""
        return NUM_CELLS - 1

    def example(self) -> str:
        return self.arch_str(0)
