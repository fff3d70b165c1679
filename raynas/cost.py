"""What a run will cost, said before it starts: per-proxy seconds and peak memory per cell,
measured on one CPU thread (``benchmarks/cell_costs.py`` writes ``raynas/data/cell_costs.json``):
the mean seconds over a few cells, and the largest peak memory among them.

An NB101 cell costs ~10x an NB201 one on a CPU (40 s against 4 s with the README's proxies),
and a user asking for 200 of them should hear "hours" before the first cell, not after. The
same figure sets the CPU actors' memory request, so that Ray neither packs more actors onto
a node than its memory holds nor prints its high-memory warning mid-run. Figures come from
a few cells at default options (options such as a batch size move them; a cell larger than
those measured needs more memory); the progress line's measured rate takes over once cells
finish.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from raynas.spec import ScoringSpec

RAY_WORKER_MB = 150.0  # a Ray worker imports ray and ray.data on top of torch (measured: +130 MB)
MEMORY_HEADROOM = 1.25  # what Ray Data itself recommends over an observed peak


@dataclass(frozen=True)
class CellCost:
    """One cell's estimated cost on one CPU thread for a spec's proxies."""

    seconds: float  # per cell: the proxies' measured means summed (a shared pass counts once each)
    memory_mb: float  # a scoring actor's peak resident memory: its base plus the largest proxy's peak
    unmeasured: tuple[str, ...]  # requested proxies with no measured figure (not in ``seconds``)
    measured: str  # where and how the figures were measured
    other_options: bool = False  # some proxy has options other than the measured defaults

    @property
    def memory_request_bytes(self) -> int:
        """The memory an actor asks Ray for (the peak with headroom)."""
        return int(self.memory_mb * MEMORY_HEADROOM * 2**20)

    def describe(self, cells: int, actors: int) -> str:
        """One line: per cell, and for the whole selection on ``actors`` CPU actors."""
        total = self.seconds * math.ceil(cells / max(1, actors)) if actors else math.nan
        missing = f"; no figure for {', '.join(self.unmeasured)}" if self.unmeasured else ""
        options = "; measured at default options, which these proxies change" if self.other_options else ""
        return (f"estimated cost: ~{_duration(self.seconds)} per cell and ~{self.memory_mb / 1024:.1f} GB per CPU "
                f"actor, so ~{_duration(total)} for {cells} cell(s) on {actors} actor(s){missing}{options} "
                f"(measured on one thread: {self.measured})")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(resources.files("raynas").joinpath("data/cell_costs.json").read_text())


def cell_cost(spec: ScoringSpec) -> CellCost | None:
    """The estimate for ``spec`` on CPU, or None where nothing was measured for its space
    (a plugin space) or for any of its proxies."""
    space = _table()["spaces"].get(spec.space.name)
    if space is None or spec.space_source is not None:
        return None
    names = list(dict.fromkeys(cp.proxy.name for cp in spec.proxies))
    known = [n for n in names if n in space["proxies"]]
    if not known:
        return None
    figures = [space["proxies"][n] for n in known]
    # float64 (measured in float32): ~4x the time (docs/history.md), twice the bytes per value.
    slower, wider = (4.0, 2.0) if spec.precision == "float64" else (1.0, 1.0)
    return CellCost(seconds=slower * sum(f["seconds"] for f in figures),
                    memory_mb=space["base_mb"] + RAY_WORKER_MB + wider * max(f["peak_mb"] for f in figures),
                    unmeasured=tuple(n for n in names if n not in known), measured=space["measured"],
                    other_options=any(cp.options != cp.proxy.options_cls() for cp in spec.proxies))
