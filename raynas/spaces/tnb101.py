"""TransNAS-Bench-101's micro space (Duan et al., CVPR 2021): 4,096 cells, each trained on
seven Taskonomy tasks (class_scene, class_object, jigsaw, room_layout, segmentsemantic,
normal, autoencoder). A cell is six ops (0 zero, 1 identity, 2 1×1 conv, 3 3×3 conv) on the
edges node 1 ← 0; node 2 ← 0, 1; node 3 ← 0, 1, 2; its network is the benchmark's
``64-41414-<cell>`` encoder with the task's decoder (:mod:`raynas.spaces.tnb101_network`).

Arch strings are the benchmark's ``64-41414-a_bc_def``; :meth:`TNB101MicroSpace.index_of`
also takes the short ``a_bc_def`` and NASLib's op tuple ``(a, b, c, d, e, f)``, which is the
same six digits in the same order. Index: the six digits in base 4, ``a`` the most
significant (NASLib's and NAS-Bench-Suite-Zero's order of the cells).

The task is the dataset (:data:`raynas.datasets.TNB101_TASKS`): a scoring spec binds the
space to it (:meth:`TNB101MicroSpace.for_dataset`), because the decoder, the input and the
probe's target depend on it. Ground truth: each task's own metric as NAS-Bench-Suite-Zero
stores it (higher is better for all seven; room_layout's is a negated loss, normal's and
autoencoder's an SSIM), for all 4,096 cells.

A cell is degenerate when no chain of non-zero ops joins node 0 to node 3; the cells are
chained without a residual, so the whole network then ignores its input.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from raynas.datasets import TNB101_TASKS
from raynas.spaces.base import GroundTruth, check_index
from raynas.spaces.tnb101_network import MicroCell

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn

OPS = ("zero", "identity", "conv_1x1", "conv_3x3")
EDGES = len(MicroCell.SOURCES)
NUM_CELLS = len(OPS) ** EDGES
PREFIX = "64-41414-"
TASKS = tuple(TNB101_TASKS)
ACCURACY_OF = {task: task for task in TASKS}  # each task's metric, a column named after it


def code_of(index: int) -> tuple[int, ...]:
    """The six op codes of cell ``index`` (base-4 digits, most significant first)."""
    digits = []
    for _ in range(EDGES):
        index, digit = divmod(index, len(OPS))
        digits.append(digit)
    return tuple(reversed(digits))


def index_from_code(ops: tuple[int, ...]) -> int:
    index = 0
    for op in ops:
        index = index * len(OPS) + op
    return index


def format_arch(ops: tuple[int, ...]) -> str:
    return f"{PREFIX}{ops[0]}_{ops[1]}{ops[2]}_{ops[3]}{ops[4]}{ops[5]}"


def parse_arch(arch: str) -> tuple[int, ...]:
    """The op codes of ``64-41414-a_bc_def``, ``a_bc_def`` or ``(a, b, c, d, e, f)``; a
    ValueError naming the string otherwise."""
    text = arch.strip()
    if text.startswith("("):
        try:
            ops = tuple(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            ops = ()
    else:
        body = text[len(PREFIX):] if text.startswith(PREFIX) else text
        digits = body.replace("_", "")
        shaped = [len(group) for group in body.split("_")] == [1, 2, 3] and digits.isdigit()
        ops = tuple(int(c) for c in digits) if shaped else ()
    if len(ops) != EDGES or any(not isinstance(o, int) or not 0 <= o < len(OPS) for o in ops):
        raise ValueError(f"malformed TransNAS-Bench-101 micro arch {arch!r}: expected '{PREFIX}a_bc_def', 'a_bc_def' "
                         "or '(a, b, c, d, e, f)' with each op in 0-3 (zero, identity, 1x1 conv, 3x3 conv)")
    return ops


def has_input_output_path(ops: tuple[int, ...]) -> bool:
    """Whether non-zero ops join node 0 to node 3."""
    reached = {0}
    for op, (node, source) in zip(ops, MicroCell.SOURCES):
        if op != 0 and source in reached:
            reached.add(node)
    return 3 in reached


def load_ground_truth_table(path: str | Path | None = None) -> "pa.Table":
    """All 4,096 cells: ``index``, ``arch`` (NASLib's op tuple) and one column per task
    (the resolved ``tnb101_micro-accuracy`` file; shipped with raynas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raynas.datafiles import resolve_need

    table = pq.read_table(Path(path) if path else resolve_need("tnb101_micro-accuracy").path,
                          columns=["arch", *TASKS])
    index = [index_from_code(parse_arch(a)) for a in table.column("arch").to_pylist()]
    return table.add_column(0, "index", pa.array(index, pa.int64())).sort_by("index")


class TNB101MicroSpace:
    """TransNAS-Bench-101 micro behind the :class:`~raynas.spaces.base.SearchSpace`
    interface; ``task`` None until a spec binds it to one (module doc)."""

    name = "tnb101_micro"
    datasets = TASKS

    def __init__(self, task: str | None = None):
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown TransNAS-Bench-101 task {task!r}; known: {', '.join(TASKS)}")
        self.task = task

    def for_dataset(self, task: str) -> TNB101MicroSpace:
        return TNB101MicroSpace(task)

    def __len__(self) -> int:
        return NUM_CELLS

    def ops(self, index: int) -> tuple[int, ...]:
        return code_of(check_index("TransNAS-Bench-101 micro", index, NUM_CELLS))

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, str):
            return index_from_code(parse_arch(arch))
        return check_index("TransNAS-Bench-101 micro", arch, NUM_CELLS)

    def arch_str(self, index: int) -> str:
        return format_arch(self.ops(index))

    def is_degenerate(self, index: int) -> bool:
        return not has_input_output_path(self.ops(index))

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(load_ground_truth_table(), dict(ACCURACY_OF))

    def build(self, index: int, num_classes: int) -> "nn.Module":
        """The cell's network for the bound task (``num_classes``: its outputs)."""
        from raynas.spaces.tnb101_network import TNB101MicroNetwork

        if self.task is None:
            raise ValueError(f"{self.name} builds one task's network: choose the task as the dataset "
                             f"({', '.join(TASKS)})")
        return TNB101MicroNetwork(self.ops(index), self.task, num_classes)

    def mutate(self, index: int, rng) -> int:
        """One edge's op changed to another; ``rng`` is a ``numpy.random.Generator``."""
        ops = list(self.ops(index))
        edge = int(rng.integers(EDGES))
        ops[edge] = [o for o in range(len(OPS)) if o != ops[edge]][int(rng.integers(len(OPS) - 1))]
        return index_from_code(tuple(ops))

    def heaviest_cell(self) -> int:
        """Every edge a 3×3 convolution: the most parameters and activation memory."""
        return NUM_CELLS - 1

    def example(self) -> str:
        return format_arch((3, 3, 1, 2, 3, 3))
