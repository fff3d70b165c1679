"""zico (ZiCo, ICLR'23): CE gradients of Conv/Linear weights on two real batches; per layer
S = Σ over elements with σ ≠ 0 of mean_b |g| / σ_b(g) (population std over the batches);
zico = Σ_layers log S, skipping layers with S = 0. The two batches are the even and odd
positions of one class-balanced probe, so both cover every class.

Rounding (``noise_tol``): with two batches, mean|g| / σ = (|a| + |b|) / |a − b| for the two
gradients a, b of an element, which is unbounded where they nearly coincide: there the
ratio is a ratio of rounding differences, and its tail decides S (ZiCo moved by 1.3e-2
between two CPU convolution kernels, 3e-3 between thread counts). The official code skips
elements with σ = 0; raynas skips those with σ ≤ ``noise_tol`` · mean|g| as well (σ is zero
to that precision), measured in docs/history.md; ``noise_tol=0`` is the official rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_logits
from raynas.proxies.layers import weight_layers, with_zeros_for_unused
from raynas.proxies.segments import concat_segments, segment_sum


NOISE_TOL = 1e-3  # measured: docs/history.md, "Rounding noise in gradients"


@dataclass(frozen=True)
class ZicoOptions:
    batch_size: int = 128  # two batches of 64, as AZ-NAS runs ZiCo on NB201
    # elements with σ <= noise_tol · mean|g| are skipped like σ = 0 (module doc); runs
    # recorded before the option existed used 0
    noise_tol: float = field(default=NOISE_TOL, metadata={"absent": 0.0})

    def __post_init__(self) -> None:
        if not 0 <= self.noise_tol < 1:
            raise ValueError(f"zico noise_tol must be in [0, 1), got {self.noise_tol}")


def zico_from_gradients(per_batch: list[list[torch.Tensor]], noise_tol: float = 0.0) -> float:
    """``per_batch[b][l]``: gradient of layer l on batch b → Σ_l log S_l, all layers at once
    (one read-back per cell)."""
    layers = [torch.stack([t.double() for t in layer_grads]) for layer_grads in zip(*per_batch)]
    g, segment, _ = concat_segments(layers, leading=1)  # (batches, Σ elements)
    sigma = g.std(dim=0, correction=0)
    mean_abs = g.abs().mean(0)
    kept = (sigma != 0) & (sigma > noise_tol * mean_abs)
    ratio = torch.where(kept, mean_abs / sigma, torch.zeros_like(sigma))
    s = segment_sum(ratio, segment, len(layers))
    return float(torch.where(s > 0, s.log(), torch.zeros_like(s)).sum())


def compute(model: nn.Module, batch: ProbeBatch, options: ZicoOptions, ctx: ProxyContext) -> dict[str, float]:
    layers = weight_layers(model)
    weights = [m.weight for m in layers]
    model.train()
    per_batch = []
    for part in (slice(0, None, 2), slice(1, None, 2)):
        loss = F.cross_entropy(forward_logits(model, batch.inputs[part]), batch.labels[part])
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        per_batch.append(with_zeros_for_unused(grads, weights))
    return {"zico": zico_from_gradients(per_batch, options.noise_tol)}


PROXY = ProxyDef(
    name="zico",
    compute=compute,
    options_cls=ZicoOptions,
    components=("zico",),
    headline="zico",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="gradient mean/std ratio across two real batches, log-summed per layer",
)
