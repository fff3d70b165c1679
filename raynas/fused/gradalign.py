"""GradAlign for K NB201 cells from one fused per-sample gradient pass
(:class:`raynas.fused.nb201.FusedNB201`): per-sample gradients of every cell at once
(``vmap ∘ grad`` over the fused module, each sample alone, so that BN normalises it by its
own statistics — the per-cell path's ``per_sample`` BN), then per class the sign Gram
[S; m][S; m]ᵀ of each cell's own chunks — one batched product per run of equal-sized
chunks, summed per cell — and the per-cell path's scoring of those sums
(:class:`raynas.proxies.gradalign.AlignmentSums`).

Exact as the per-cell sums are: the entries are −1, 0 or 1 and every product sums fewer
than 2²⁴ of them in the float32 accumulator. What differs from the per-cell path is how
the per-sample gradients are rounded (vmap over the fused network against its closed
forms per layer), and a gradient component whose exact value is zero — rounding noise —
can take another sign: GradAlign-I moves by such flips as between two convolution kernels
(``tests/kernel_tolerances.py``). Fused only with ``bn=per_sample`` and ``noise_tol=0``
(the defaults); other options go cell by cell.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from raynas.fused.nb201 import FusedNB201, summed_loss
from raynas.probes import ProbeBatch
from raynas.proxies.gradalign import BYTES_PER_SAMPLE_PARAM, AlignmentSums, GradAlignOptions, batch_chunks


def fusable_options(options: GradAlignOptions) -> bool:
    return options.bn == "per_sample" and options.noise_tol == 0


def fused_gradalign(fused: FusedNB201, batch: ProbeBatch, options: GradAlignOptions) -> list[dict[str, float]]:
    """Each cell's GradAlign components (the per-cell path's, to the rounding above)."""
    k = fused.k
    flat = fused.flat.detach()

    def sample_loss(values: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return summed_loss(functional_call(fused, {"flat": values}, (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    segment, owner = fused.selections["all"]
    n_params = [0] * k
    for chunk, numel in zip(fused.chunks, fused.chunk_numels):
        if chunk.real:
            n_params[chunk.cell] += numel
    # ``memory_mb`` is per network, as on the per-cell path: a pass of K networks has K times it.
    max_rows = max(1, int(k * options.memory_mb * 2**20) // (BYTES_PER_SAMPLE_PARAM * flat.numel()))
    grams = []
    for chunk, slots, inputs, labels in batch_chunks(batch, max_rows):
        grads = per_sample(flat, inputs, labels)  # (rows, flat)
        classes, width = len(chunk.sizes), chunk.sizes[0]
        padded = grads.new_zeros(classes * width, grads.shape[1]).index_copy_(0, slots, grads).view(classes, width, -1)
        del grads
        signs = torch.cat([torch.sign(padded), torch.sign(padded.sum(1, keepdim=True))], dim=1)
        del padded
        # Per chunk of parameters: (chunks, classes, width + 1, width + 1); summed per cell.
        per_chunk = torch.cat([torch.einsum("cwjn,cvjn->jcwv", rows, rows) for rows in fused.chunk_rows(signs)])
        shape = (k, classes, width + 1, width + 1)
        grams.append((chunk, per_chunk.new_zeros(shape).index_add_(0, owner, per_chunk[segment]).double()))
    on_host = [(chunk, gram.cpu()) for chunk, gram in grams]  # one transfer per chunk of classes
    results = []
    for cell in range(k):
        sums = AlignmentSums(torch.device("cpu"), n_params[cell])
        sums.chunks = [(chunk, gram[cell]) for chunk, gram in on_host]
        results.append(sums.scores())
    return results
