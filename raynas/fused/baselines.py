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

# Per cell's slice (rows: cells, one flattened tensor each): the per-cell path's sums.
PRODUCTS = {"grad_norm": lambda w, g: g.double().pow(2).sum(1).sqrt(), "snip": lambda w, g: (g * w).abs().double().sum(1)}


def fused_weight_products(fused: FusedNB201, batch: ProbeBatch, proxies: list[str]) -> list[dict[str, float] | None]:
    """Per cell, ``{proxy: value}`` for each of ``proxies`` (grad_norm, snip), or None for a
    cell whose output ignores its input. Batched per fused weight: one reduction for all
    its cells."""
    fused.train()
    fused.zero_grad(set_to_none=True)
    logits = fused(batch.inputs)
    k, device = fused.k, logits.device
    detached = logits.detach()
    ignores_input = (detached == detached[:1]).flatten(2).all(2).all(0) & (len(detached) > 1)
    weights = [p for p, is_weight in zip(fused.store.params, fused.store.weights) if is_weight]
    slots = [s for s, is_weight in zip(fused.store.slots, fused.store.weights) if is_weight]
    per_sample = F.cross_entropy(logits.transpose(1, 2), batch.labels.unsqueeze(1).expand(-1, k), reduction="none")
    grads = torch.autograd.grad(per_sample.mean(0).sum(), weights, allow_unused=True)
    totals = torch.zeros(len(proxies), k, dtype=torch.float64, device=device)
    for weight, grad, weight_slots in zip(weights, grads, slots):
        if grad is None:  # no cell's loss reaches it: zero gradients, which add nothing
            continue
        w, g = weight.detach().reshape(len(weight_slots), -1), grad.reshape(len(weight_slots), -1)
        cells = torch.tensor([slot.cell for slot in weight_slots], device=device)
        for j, proxy in enumerate(proxies):
            totals[j] = totals[j].index_add(0, cells, PRODUCTS[proxy](w, g))
    values = torch.cat([totals, ignores_input.double().unsqueeze(0)]).T.tolist()  # the one read-back
    return [None if v[-1] else dict(zip(proxies, v[:-1])) for v in values]
