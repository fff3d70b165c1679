"""fisher (zero-cost-nas, channel mode): per output channel k of each Conv/Linear layer,
F_k = ½ mean_n (Σ_hw a ⊙ ∂CE/∂a)² with a the layer's output; zero-cost-nas broadcasts
|F_k| to every weight of channel k before summing, so the score is
Σ_layers Σ_k |F_k| · (C_in · k_h · k_w)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.gradient_pass import FISHER, gradient_pass


@dataclass(frozen=True)
class FisherOptions:
    batch_size: int = 64


def compute(model: nn.Module, batch: ProbeBatch, options: FisherOptions, ctx: ProxyContext) -> dict[str, float]:
    result = gradient_pass(model, batch, ctx, frozenset({FISHER}))
    total = sum(f.abs().sum().double() * math.prod(w.shape[1:]) for f, w in zip(result.fisher, result.weights))
    return {"fisher": float(total)}


PROXY = ProxyDef(
    name="fisher",
    compute=compute,
    options_cls=FisherOptions,
    components=("fisher",),
    headline="fisher",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    shares=frozenset({FISHER}),
    description="diagonal Fisher information of layer outputs (real labelled batch)",
)
