"""Fused scoring (issue 25): several cells' networks in one module, one pass for all.

Which (space, proxy) pairs have a fused path, and the one entry point the scorer calls
(:meth:`raynas.scoring.CellScorer.iter_scores` with ``cells_per_pass`` > 1). Everything else
is scored cell by cell in the same scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ConfiguredProxy

FUSABLE = frozenset({("nb201", "intrain")})


def fused_scores(cp: ConfiguredProxy, models: Sequence[nn.Module], batch: ProbeBatch) -> list[dict[str, float] | None]:
    """Each model's components (None: its output ignores its input) from one fused pass."""
    from raynas.fused.intrain import fused_intrain
    from raynas.fused.nb201 import FusedNB201

    if cp.proxy.name != "intrain":
        raise ValueError(f"no fused path for proxy {cp.proxy.name!r}")
    fused = FusedNB201(models).to(batch.inputs.device, batch.inputs.dtype)
    return fused_intrain(fused, batch, cp.options)
