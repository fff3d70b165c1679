"""Fused scoring (issue 25): several cells' networks in one module, one pass for all.

Which (space, proxy) pairs have a fused path, and the one entry point the scorer calls
(:meth:`raynas.scoring.CellScorer.iter_scores` on its fused path). Proxies that differentiate
the same batch share one fused pass, as they share one pass per cell
(:mod:`raynas.proxies.gradient_pass`). Everything else is scored cell by cell in the same
scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ConfiguredProxy, ProbeSpec

FUSABLE = frozenset({("nb201", "intrain"), ("nb201", "grad_norm"), ("nb201", "snip"), ("nb201", "gradalign")})
WEIGHT_PRODUCTS = ("grad_norm", "snip")


def fusable(space_name: str, cp: ConfiguredProxy) -> bool:
    """Whether ``cp`` on this space has a fused path (for its options: GradAlign fuses only
    with per-sample BN and no noise threshold, its defaults)."""
    if (space_name, cp.proxy.name) not in FUSABLE:
        return False
    if cp.proxy.name == "gradalign":
        from raynas.fused.gradalign import fusable_options

        return fusable_options(cp.options)
    return True


def fused_scores(proxies: Sequence[ConfiguredProxy], models: Sequence[nn.Module],
                 probes: dict[ProbeSpec, ProbeBatch]) -> dict[str, list[dict[str, float] | None]]:
    """Per proxy label, each model's components (None: its output ignores its input), from
    as few fused passes as the proxies' batches allow."""
    from raynas.fused.baselines import fused_weight_products
    from raynas.fused.gradalign import fused_gradalign
    from raynas.fused.intrain import fused_intrain
    from raynas.fused.nb201 import FusedNB201

    def build(batch: ProbeBatch) -> FusedNB201:
        return FusedNB201(models)  # on the models' device and dtype, which are the batch's

    out: dict[str, list[dict[str, float] | None]] = {}
    shared: dict[ProbeSpec, list[ConfiguredProxy]] = {}
    for cp in proxies:
        if cp.proxy.name == "intrain":
            batch = probes[cp.probe_spec()]
            out[cp.label] = fused_intrain(build(batch), batch, cp.options)
        elif cp.proxy.name == "gradalign":
            batch = probes[cp.probe_spec()]
            out[cp.label] = fused_gradalign(build(batch), batch, cp.options)
        elif cp.proxy.name in WEIGHT_PRODUCTS:
            shared.setdefault(cp.probe_spec(), []).append(cp)
        else:
            raise ValueError(f"no fused path for proxy {cp.proxy.name!r}")
    for spec, group in shared.items():
        batch = probes[spec]
        values = fused_weight_products(build(batch), batch, [cp.proxy.name for cp in group])
        for cp in group:
            out[cp.label] = [None if v is None else {cp.proxy.components[0]: v[cp.proxy.name]} for v in values]
    return out
