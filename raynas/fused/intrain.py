"""InTrain for K NB201 cells from one fused forward and backward
(:class:`raynas.fused.nb201.FusedNB201`): per cell, the participation ratios of its own
channels of every fused layer and the resilience of its own slices of every fused gradient
— the same tensors, and the same formula (:func:`raynas.proxies.intrain.from_sums`), as the
per-cell path, so only the kernels' rounding differs. Everything stays on the device until
one read-back for the whole pass."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from raynas.fused.nb201 import FusedNB201, split_by_cell
from raynas.probes import ProbeBatch
from raynas.proxies.intrain import InTrainOptions, from_sums, gradient_resilience, participation_ratios, sums


def fused_intrain(fused: FusedNB201, batch: ProbeBatch, options: InTrainOptions) -> list[dict[str, float] | None]:
    """Each cell's InTrain components, or None for a cell whose output ignores its input
    (the per-cell path's DegenerateNetwork)."""
    fused.train()
    tape = fused.store.tape
    tape.items.clear()
    tape.on = True
    try:
        logits = fused(batch.inputs)
    finally:
        tape.on = False
    detached = logits.detach()
    ignores_input = (detached == detached[:1]).flatten(2).all(2).all(0) & (len(detached) > 1)  # (K,)
    owners: list[int] = []
    activations: list[torch.Tensor] = []
    for layer, output in tape.items:
        if options.layers == "conv" and layer is fused.classifier_layer:
            continue
        for cell, part in split_by_cell(layer, output):
            owners.append(cell)
            activations.append(part)
    tape.items.clear()
    # All cells' layers in one call: on a GPU, layers of one shape are computed together.
    ratios = participation_ratios(activations, options.eps, options.dead_tol).to(logits.device)
    activations.clear()
    # One loss per cell, summed: each cell's gradients are those of its own loss.
    sum(F.cross_entropy(logits[:, k], batch.labels) for k in range(fused.k)).backward()
    grads: list[list[torch.Tensor]] = [[] for _ in range(fused.k)]
    for param, slots, weight in zip(fused.store.params, fused.store.slots, fused.store.weights):
        for slot in slots:
            if not slot.reaches_output:
                continue
            g = param.grad[slot.rows]
            if options.grad_params == "weights" and not weight:
                continue
            if options.grad_params == "multi_element" and g.numel() <= 1:
                continue
            grads[slot.cell].append(g)
    # Each cell's layers picked by host-side indices (a boolean mask would read back to the host).
    mine = [torch.tensor([i for i, o in enumerate(owners) if o == k], device=logits.device) for k in range(fused.k)]
    per_cell = [sums(ratios.index_select(0, mine[k]),
                     gradient_resilience(grads[k], noise_tol=options.noise_tol).to(logits.device))
                for k in range(fused.k)]
    values = torch.cat([torch.stack(per_cell), ignores_input.double().unsqueeze(1)], dim=1).tolist()  # one read-back
    layers = [owners.count(k) for k in range(fused.k)]
    return [None if v[3] else from_sums(v[:3], n) for v, n in zip(values, layers)]
