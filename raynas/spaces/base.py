"""The interface every search space implements, so the scorer and the Ray layer never
special-case a space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn


@dataclass(frozen=True)
class GroundTruth:
    """A space's benchmark accuracies: ``table`` has an ``index`` column (the space's cell
    index) and one accuracy column per dataset, named in ``accuracy_of``."""

    table: "pa.Table"
    accuracy_of: dict[str, str]

    def column(self, dataset: str) -> str:
        if dataset not in self.accuracy_of:
            raise ValueError(f"no accuracies for dataset {dataset!r}; known: {', '.join(self.accuracy_of)}")
        return self.accuracy_of[dataset]

    def by_cell(self, dataset: str) -> dict[int, float]:
        """{cell index: accuracy} for the cells with a known accuracy on ``dataset``."""
        values = self.table.column(self.column(dataset)).to_pylist()
        return {int(i): float(a) for i, a in zip(self.table.column("index").to_pylist(), values) if a is not None}


@runtime_checkable
class SearchSpace(Protocol):
    """A finite, indexed search space of buildable cells. A space with benchmark accuracies
    also has ``ground_truth() -> GroundTruth`` (optional: ``raynas report --ground-truth``
    serves the others)."""

    name: str

    def __len__(self) -> int: ...

    def index_of(self, arch: int | str) -> int:
        """Canonical index of a cell given as an index or the space's string form."""
        ...

    def arch_str(self, index: int) -> str:
        """Human-readable, round-trippable string of the cell at ``index``."""
        ...

    def is_degenerate(self, index: int) -> bool:
        """True when the cell's output cannot depend on its input (no input→output path)."""
        ...

    def build(self, index: int, num_classes: int) -> "nn.Module":
        """A freshly initialised network (default PyTorch init) that returns logits."""
        ...

    def example(self) -> str:
        """An example arch string for help texts."""
        ...


def check_index(space: str, index: object, size: int) -> int:
    """``index`` as a valid cell index of a space of ``size`` cells, or a ValueError naming it."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ValueError(f"{space} index {index!r} out of range: must be an int in [0, {size})")
    return index


def cell_payload(space: SearchSpace, index: int) -> int | str:
    """What a cell travels to a scoring worker as: its index, or, for a space without an
    enumeration (``enumerable = False``: the index only names a structure), its string."""
    return index if getattr(space, "enumerable", True) else space.arch_str(index)
