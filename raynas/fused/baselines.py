"""grad_norm and snip for K NB201 cells from one fused cross-entropy pass on the real batch
(:class:`raynas.fused.nb201.FusedNB201`): the per-cell path's shared gradient pass
(:mod:`raynas.proxies.gradient_pass`) with each cell's loss summed, then each cell's own
weight slices and their gradients — a layer the loss does not reach has zero gradients in
both paths. One read-back for the pass."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from raynas.fused.nb201 import FusedNB201
from raynas.probes import ProbeBatch

PRODUCTS = {"grad_norm": lambda w, g: g.norm().double(), "snip": lambda w, g: (g * w).abs().sum().double()}


def fused_weight_products(fused: FusedNB201, batch: ProbeBatch, proxies: list[str]) -> list[dict[str, float] | None]:
    """Per cell, ``{proxy: value}`` for each of ``proxies`` (grad_norm, snip), or None for a
    cell whose output ignores its input."""
    fused.train()
    fused.zero_grad(set_to_none=True)
    logits = fused(batch.inputs)
    detached = logits.detach()
    ignores_input = (detached == detached[:1]).flatten(2).all(2).all(0) & (len(detached) > 1)
    weights = [p for p, is_weight in zip(fused.store.params, fused.store.weights) if is_weight]
    slots = [s for s, is_weight in zip(fused.store.slots, fused.store.weights) if is_weight]
    loss = sum(F.cross_entropy(logits[:, k], batch.labels) for k in range(fused.k))
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    totals = [[logits.new_zeros((), dtype=torch.float64) for _ in proxies] for _ in range(fused.k)]
    for weight, grad, weight_slots in zip(weights, grads, slots):
        grad = torch.zeros_like(weight) if grad is None else grad
        for slot in weight_slots:
            w, g = weight.detach()[slot.rows], grad[slot.rows]
            for j, proxy in enumerate(proxies):
                totals[slot.cell][j] = totals[slot.cell][j] + PRODUCTS[proxy](w, g)
    values = torch.stack([torch.stack(t) for t in totals]).tolist()
    flags = ignores_input.tolist()
    return [None if flags[k] else dict(zip(proxies, values[k])) for k in range(fused.k)]
