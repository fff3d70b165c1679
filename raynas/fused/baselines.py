"""grad_norm and snip for K NB201 cells from one fused cross-entropy pass on the real batch
(:class:`raynas.fused.nb201.FusedNB201`): the per-cell path's shared gradient pass
(:mod:`raynas.proxies.gradient_pass`) with each cell's loss summed, then each cell's own
weight slices and their gradients — a layer the loss does not reach has zero gradients in
both paths. One read-back for the pass."""

from __future__ import annotations

import torch

from raynas.fused.nb201 import FusedNB201, ignores_input, summed_loss
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
    degenerate = ignores_input(logits)
    weights = [p for p, is_weight in zip(fused.store.params, fused.store.weights) if is_weight]
    slots = [s for s, is_weight in zip(fused.store.slots, fused.store.weights) if is_weight]
    grads = torch.autograd.grad(summed_loss(logits, batch.labels), weights, allow_unused=True)
    totals = torch.zeros(len(proxies), k, dtype=torch.float64, device=device)
    for weight, grad, weight_slots in zip(weights, grads, slots):
        if grad is None:  # no cell's loss reaches it: zero gradients, which add nothing
            continue
        w, g = weight.detach().reshape(len(weight_slots), -1), grad.reshape(len(weight_slots), -1)
        cells = torch.tensor([slot.cell for slot in weight_slots], device=device)
        for j, proxy in enumerate(proxies):
            totals[j] = totals[j].index_add(0, cells, PRODUCTS[proxy](w, g))
    values = torch.cat([totals, degenerate.double().unsqueeze(0)]).T.tolist()  # the one read-back
    return [None if v[-1] else dict(zip(proxies, v[:-1])) for v in values]
