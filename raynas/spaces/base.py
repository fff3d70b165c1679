"""The interface every search space implements, so the scorer and the Ray layer never
special-case a space."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class SearchSpace(Protocol):
    """A finite, indexed search space of buildable cells."""

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

    def build(self, index: int, num_classes: int) -> nn.Module:
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
