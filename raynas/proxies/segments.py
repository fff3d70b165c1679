"""Per-tensor reductions over many tensors at once: concatenate them into one vector and
reduce by segment, so that a proxy costs a few kernel launches per cell instead of a few
per layer or parameter (each launch costs microseconds on a GPU whatever its size)."""

from __future__ import annotations

import torch


def concat_segments(tensors: list[torch.Tensor], leading: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values, segment, sizes): the tensors flattened after their first ``leading``
    dimensions and joined along the last one, the tensor each column came from, and each
    tensor's column count (float64, for means)."""
    flat = torch.cat([t.reshape(*t.shape[:leading], -1) for t in tensors], dim=-1)
    counts = [t[(0,) * leading].numel() for t in tensors]
    sizes = torch.tensor(counts, device=flat.device)
    segment = torch.repeat_interleave(torch.arange(len(tensors), device=flat.device), sizes, output_size=sum(counts))
    return flat, segment, sizes.double()


def segment_sum(values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    """Σ of ``values`` (..., columns) within each of ``n`` segments → (..., n)."""
    return values.new_zeros(*values.shape[:-1], n).index_add(-1, segment, values)
