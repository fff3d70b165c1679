"""snip (zero-cost-nas): Σ |∂CE/∂W ⊙ W| over Conv/Linear weights — the gradient of the loss
with respect to a multiplicative mask at 1 — on a real labelled batch, BN in train mode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.gradient_pass import WEIGHT_GRADS, gradient_pass


@dataclass(frozen=True)
class SnipOptions:
    batch_size: int = 64


def compute(model: nn.Module, batch: ProbeBatch, options: SnipOptions, ctx: ProxyContext) -> dict[str, float]:
    result = gradient_pass(model, batch, ctx, frozenset({WEIGHT_GRADS}))
    return {"snip": float(sum((g * w).abs().sum().double() for g, w in zip(result.weight_grads, result.weights)))}


PROXY = ProxyDef(
    name="snip",
    compute=compute,
    options_cls=SnipOptions,
    components=("snip",),
    headline="snip",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    shares=frozenset({WEIGHT_GRADS}),
    description="connection sensitivity sum |g * w| (real labelled batch)",
)
