"""grad_norm and snip for K NB201 cells from one fused cross-entropy pass on the real batch
(:class:`raynas.fused.nb201.FusedNB201`): the per-cell path's shared gradient pass
(:mod:`raynas.proxies.gradient_pass`) with each cell's loss summed, then each cell's own
weight chunks of the flat gradient, reduced per run of equal-sized chunks — a layer the loss does not reach
has zero gradients in both paths. One read-back for the pass."""

from __future__ import annotations

import torch

from raynas.fused.nb201 import FusedNB201, chunk_sums, ignores_input, summed_loss
from raynas.probes import ProbeBatch

# Per weight chunk, from the flat gradient g and weights w: the per-cell path's terms.
PRODUCTS = {"grad_norm": lambda fused, w, g: chunk_sums(fused.chunk_rows(g * g)).sqrt(),
            "snip": lambda fused, w, g: chunk_sums(fused.chunk_rows((g * w).abs()))}


def fused_weight_products(fused: FusedNB201, batch: ProbeBatch, proxies: list[str]) -> list[dict[str, float] | None]:
    """Per cell, ``{proxy: value}`` for each of ``proxies`` (grad_norm, snip), or None for a
    cell whose output ignores its input."""
    logits = fused(batch.inputs)
    k, device = fused.k, logits.device
    degenerate = ignores_input(logits)
    (grad,) = torch.autograd.grad(summed_loss(logits, batch.labels), [fused.flat])
    w, g = fused.flat.detach().double(), grad.double()
    segment, owner = fused.selections["weights"]
    zeros = torch.zeros(k, dtype=torch.float64, device=device)
    totals = torch.stack([zeros.index_add(0, owner, PRODUCTS[p](fused, w, g)[segment]) for p in proxies])
    values = torch.cat([totals, degenerate.double().unsqueeze(0)]).T.tolist()  # the one read-back
    return [None if v[-1] else dict(zip(proxies, v[:-1])) for v in values]
