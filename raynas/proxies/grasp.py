"""grasp (zero-cost-nas): Σ −W ⊙ (H g) over Conv/Linear weights, with g = ∂CE/∂W (the
shared pass) and H g from a second, double-differentiable pass. zero-cost-nas flips the
sign ("accuracy seems negatively correlated"); raynas keeps its convention."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.gradient_pass import WEIGHT_GRADS, gradient_pass
from raynas.proxies.layers import weight_layers


@dataclass(frozen=True)
class GraspOptions:
    batch_size: int = 64


def compute(model: nn.Module, batch: ProbeBatch, options: GraspOptions, ctx: ProxyContext) -> dict[str, float]:
    g = gradient_pass(model, batch, ctx, frozenset({WEIGHT_GRADS})).weight_grads
    weights = [layer.weight for layer in weight_layers(model)]
    model.train()
    loss = F.cross_entropy(model(batch.inputs), batch.labels)
    grad_f = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    z = sum((gi * gf).sum() for gi, gf in zip(g, grad_f) if gf is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return {"grasp": 0.0}
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    total = sum((-w.detach() * h).sum().double() for w, h in zip(weights, hg) if h is not None)
    return {"grasp": float(total)}


PROXY = ProxyDef(
    name="grasp",
    compute=compute,
    options_cls=GraspOptions,
    components=("grasp",),
    headline="grasp",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    shares=frozenset({WEIGHT_GRADS}),
    description="gradient signal preservation -w * Hg (real labelled batch)",
)
