"""The MobileNetV2-like ImageNet space of Zen-NAS, ZiCo, AZ-NAS and InTrain-NAS (``mbv2``):
cells are structure strings (:mod:`raynas.spaces.mbv2_structure`), built as
:mod:`raynas.spaces.mbv2_network` builds them, scored on ImageNet's shape (224×224, 1,000
classes; data-free proxies only: there are no ImageNet images here).

The space has no enumeration, so a cell's index is a name for its structure: the first 63
bits of the SHA-256 of its canonical string. Results, resume and exactly-once work on that
index as on any other space's; the string itself travels with the cell to the scoring
actors (:attr:`MBV2Space.enumerable` is False), and a process knows the index of every
structure it has parsed or made (a search's mutations are replayed on resume, so a resumed
search knows its cells again). Searches start from ``INITIAL`` (the peers' 450M initial
structure) and grow by mutation under a FLOPs budget in the peers' own count
(:meth:`MBV2Space.structure_flops`) and a layer cap (:meth:`MBV2Space.layers`).
"""

from __future__ import annotations

import hashlib
import sys
from typing import TYPE_CHECKING, ClassVar

from raynas.spaces.mbv2_structure import (format_structure, layer_count, mutate, parse_structure, zen_flops)

if TYPE_CHECKING:
    from torch import nn

# The initial structure of the peers' 450M / 600M / 1G searches (AZ-NAS' and ZiCo's scripts).
INITIAL = ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)SuperResIDWE6K3(32,48,2,32,1)"
           "SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1)SuperConvK1BNRELU(128,2048,1,1)")
MAX_LAYERS = 14  # the peers' --max_layers for every ImageNet budget


def structure_index(canonical: str) -> int:
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big") >> 1


class MBV2Space:
    """The ``mbv2`` space behind the :class:`~raynas.spaces.base.SearchSpace` interface."""

    name = "mbv2"
    datasets = ("imagenet",)
    enumerable = False
    max_layers = MAX_LAYERS  # a pool search's default layer cap
    _known: ClassVar[dict[int, str]] = {}  # index → canonical structure, for this process

    def __len__(self) -> int:
        return sys.maxsize  # unbounded: a run names its cells, a search makes them

    def remember(self, blocks) -> int:
        canonical = format_structure(blocks)
        index = structure_index(canonical)
        self._known[index] = canonical
        return index

    def blocks(self, index: int):
        return parse_structure(self.arch_str(index))

    def index_of(self, arch: int | str) -> int:
        if isinstance(arch, str):
            return self.remember(parse_structure(arch))
        if isinstance(arch, bool) or not isinstance(arch, int) or arch not in self._known:
            raise ValueError(f"mbv2 cell {arch!r} is not a structure this process has seen: mbv2 cells have no "
                             "enumeration; give the structure string (e.g. in a --cells @FILE, one per line)")
        return arch

    def arch_str(self, index: int) -> str:
        self.index_of(index)
        return self._known[index]

    def is_degenerate(self, index: int) -> bool:
        self.index_of(index)
        return False  # every part has a shortcut: the input always reaches the output

    def build(self, index: int, num_classes: int) -> "nn.Module":
        from raynas.spaces.mbv2_network import MBV2Network

        return MBV2Network(self.blocks(index), num_classes)

    def initial(self) -> int:
        return self.index_of(INITIAL)

    def mutate(self, index: int, rng, replaces: int = 1) -> int:
        """A structure with ``replaces`` blocks redrawn (the peers' mutation)."""
        return self.remember(mutate(self.blocks(index), rng, replaces))

    def structure_flops(self, index: int) -> float:
        """FLOPs at 224×224 as the peers count them (``MasterNet.get_FLOPs``), for budgets."""
        return zen_flops(self.blocks(index))

    def layers(self, index: int) -> int:
        return layer_count(self.blocks(index))

    def example(self) -> str:
        return INITIAL
