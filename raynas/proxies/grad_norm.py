"""grad_norm (zero-cost-nas): Σ over Conv/Linear layers of ‖∂CE/∂W‖₂ on a real labelled
batch, BN in train mode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.gradient_pass import WEIGHT_GRADS, gradient_pass


@dataclass(frozen=True)
class GradNormOptions:
    batch_size: int = 64  # zero-cost-nas' NB201 default


def compute(model: nn.Module, batch: ProbeBatch, options: GradNormOptions, ctx: ProxyContext) -> dict[str, float]:
    grads = gradient_pass(model, batch, ctx, frozenset({WEIGHT_GRADS})).weight_grads
    return {"grad_norm": float(sum(g.norm().double() for g in grads))}


PROXY = ProxyDef(
    name="grad_norm",
    compute=compute,
    options_cls=GradNormOptions,
    components=("grad_norm",),
    headline="grad_norm",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    shares=frozenset({WEIGHT_GRADS}),
    description="sum of per-layer gradient norms (real labelled batch)",
)
