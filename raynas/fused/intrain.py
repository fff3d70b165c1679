"""InTrain for K NB201 cells from one fused forward and backward
(:class:`raynas.fused.nb201.FusedNB201`): per cell, the participation ratios of its own
channels of every fused layer and the resilience of its own chunks of the flat gradient —
the per-cell path's quantities and formulas (:func:`raynas.proxies.intrain.stacked_ratios`,
:func:`~raynas.proxies.intrain.resilience`, :func:`~raynas.proxies.intrain.from_sums`), so only
the kernels' rounding differs.

The work is batched over layers and cells: one covariance stack per activation shape (in
groups of at most :data:`STACK_BYTES`), a few reductions per run of equal-sized chunks of
the flat gradient, so a pass costs a number of kernels that grows with neither K nor the layers'
count, and everything stays on the device until one read-back for the whole pass.
"""

from __future__ import annotations

import math

import torch

from raynas.fused.nb201 import FusedNB201, chunk_moments, ignores_input, summed_loss
from raynas.probes import ProbeBatch
from raynas.proxies.intrain import InTrainOptions, from_sums, resilience, stacked_ratios

STACK_BYTES = 2**30  # float64 activation rows per stacked covariance computation


def fused_intrain(fused: FusedNB201, batch: ProbeBatch, options: InTrainOptions) -> list[dict[str, float] | None]:
    """Each cell's InTrain components, or None for a cell whose output ignores its input
    (the per-cell path's DegenerateNetwork)."""
    fused.tape = []
    try:
        logits = fused(batch.inputs)  # (N, K, classes)
    finally:
        taped, fused.tape = fused.tape, None
    degenerate = ignores_input(logits)
    if options.layers == "conv":
        taped = [(row, out) for row, out in taped if row != fused.classifier_row]
    log_pr = log_participation(fused, taped, options)
    layers = [sum(fused.present_rows[row][cell] for row, _ in taped) for cell in range(fused.k)]
    taped.clear()  # the PRs are all that is kept of the activations

    summed_loss(logits, batch.labels).backward()

    segment, owner = fused.selections["live_weights" if options.grad_params == "weights" else "live"]
    device, k = logits.device, fused.k
    # (every NB201 tensor has more than one element: multi_element and all keep the same)
    peak, std = chunk_moments(fused.chunk_rows(fused.flat.grad.detach().double()))
    r = resilience(peak[segment], std[segment], options.noise_tol, owner, k)
    o = torch.zeros(k, dtype=torch.float64, device=device).index_add(0, owner, r)
    zero = torch.zeros(k, dtype=torch.float64, device=device).index_add(0, owner, (r == 0).double())

    values = torch.stack([log_pr, o, zero, degenerate.double()], dim=1).tolist()  # the one read-back
    return [None if v[3] else from_sums(v[:3], n) for v, n in zip(values, layers)]


def log_participation(fused: FusedNB201, taped: list[tuple[int, torch.Tensor]],
                      options: InTrainOptions) -> torch.Tensor:
    """Σ log PR per cell over its layers among ``taped`` (K,), float64 on the device: the
    outputs of one shape stacked, each (layer, cell) its own covariance."""
    k = fused.k
    outputs = dict(taped)
    total = torch.zeros(k, dtype=torch.float64, device=fused.flat.device)
    for rows in fused.row_groups.values():
        rows = [row for row in rows if row in outputs]
        if not rows:
            continue
        shape = outputs[rows[0]].shape
        per_group = max(1, STACK_BYTES // (8 * math.prod(shape)))
        for start in range(0, len(rows), per_group):
            group = rows[start:start + per_group]
            stacked = torch.stack([outputs[row].detach() for row in group]).double()
            g, n, channels = len(group), shape[0], shape[1] // k
            activations = stacked.view(g, n, k, channels, -1).permute(0, 2, 1, 4, 3).reshape(g * k, -1, channels)
            ratios = stacked_ratios(activations, options.eps, options.dead_tol).view(g, k)
            present = fused.present[group[0]:group[-1] + 1]  # a group's rows are consecutive
            total = total + torch.where(present, ratios.log(), torch.zeros_like(ratios)).sum(0)
    return total
