"""InTrain for K NB201 cells from one fused forward and backward
(:class:`raynas.fused.nb201.FusedNB201`): per cell, the participation ratios of its own
channels of every fused layer and the resilience of its own slices of every fused gradient
— the per-cell path's quantities and formulas (:func:`raynas.proxies.intrain.stacked_ratios`,
:func:`~raynas.proxies.intrain.resilience`, :func:`~raynas.proxies.intrain.from_sums`), so only
the kernels' rounding differs.

The work is batched over the cells of each fused tensor — one covariance per (layer, cell)
from one batched product per fused layer, one max/std per (tensor, cell) from one reduction
per fused parameter — so a pass costs a number of kernels that does not grow with K, and
everything stays on the device until one read-back for the whole pass.
"""

from __future__ import annotations

import torch

from raynas.fused.nb201 import FusedNB201, ignores_input, summed_loss
from raynas.probes import ProbeBatch
from raynas.proxies.intrain import InTrainOptions, from_sums, resilience, stacked_ratios


def fused_intrain(fused: FusedNB201, batch: ProbeBatch, options: InTrainOptions) -> list[dict[str, float] | None]:
    """Each cell's InTrain components, or None for a cell whose output ignores its input
    (the per-cell path's DegenerateNetwork)."""
    fused.train()
    tape = fused.store.tape
    tape.items.clear()
    tape.on = True
    try:
        logits = fused(batch.inputs)  # (N, K, classes)
    finally:
        tape.on = False
    device, k = logits.device, fused.k
    degenerate = ignores_input(logits)

    # γ: per fused layer, its cells' PRs at once; summed per cell.
    log_pr = torch.zeros(k, dtype=torch.float64, device=device)
    layers = [0] * k
    for layer, output in tape.items:
        if options.layers == "conv" and layer is fused.classifier_layer:
            continue
        rows = output.detach().movedim(1, -1).reshape(-1, len(layer.cells), layer.channels).transpose(0, 1)
        ratios = stacked_ratios(rows.double(), options.eps, options.dead_tol)
        log_pr = log_pr.index_add(0, _index(layer.cells, device), ratios.log())
        for cell in layer.cells:
            layers[cell] += 1
    tape.items.clear()

    summed_loss(logits, batch.labels).backward()

    # o: per fused parameter, each cell's slice's max|g| and std at once.
    peaks, stds, owners = [], [], []
    for param, slots, weight in zip(fused.store.params, fused.store.slots, fused.store.weights):
        if (options.grad_params == "weights" and not weight) or param.grad is None:  # None: no cell's output reaches it
            continue
        per_cell = param.grad.detach().reshape(len(slots), -1)
        if options.grad_params == "multi_element" and per_cell.shape[1] <= 1:
            continue
        kept = [i for i, slot in enumerate(slots) if slot.reaches_output]  # the per-cell path's grad-None tensors
        if not kept:
            continue
        if len(kept) < len(slots):
            per_cell = per_cell.index_select(0, _index(kept, device))
        flat = per_cell.double()
        peaks.append(flat.abs().amax(1))
        stds.append((flat - flat.mean(1, keepdim=True)).pow(2).mean(1).sqrt())
        owners.append(_index([slots[i].cell for i in kept], device))
    owner = torch.cat(owners)
    r = resilience(torch.cat(peaks), torch.cat(stds), options.noise_tol, owner, k)
    o = torch.zeros(k, dtype=torch.float64, device=device).index_add(0, owner, r)
    zero = torch.zeros(k, dtype=torch.float64, device=device).index_add(0, owner, (r == 0).double())

    values = torch.stack([log_pr, o, zero, degenerate.double()], dim=1).tolist()  # the one read-back
    return [None if v[3] else from_sums(v[:3], n) for v, n in zip(values, layers)]


def _index(values: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)
