"""zico (ZiCo, ICLR'23): CE gradients of Conv/Linear weights on two real batches; per layer
S = Σ over elements with σ ≠ 0 of mean_b |g| / σ_b(g) (population std over the batches);
zico = Σ_layers log S, skipping layers with S = 0. The two batches are the even and odd
positions of one class-balanced probe, so both cover every class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_logits
from raynas.proxies.layers import weight_layers, with_zeros_for_unused
from raynas.proxies.segments import concat_segments, segment_sum


@dataclass(frozen=True)
class ZicoOptions:
    batch_size: int = 128  # two batches of 64, as AZ-NAS runs ZiCo on NB201


def zico_from_gradients(per_batch: list[list[torch.Tensor]]) -> float:
    """``per_batch[b][l]``: gradient of layer l on batch b → Σ_l log S_l, all layers at once
    (one read-back per cell)."""
    layers = [torch.stack([t.double() for t in layer_grads]) for layer_grads in zip(*per_batch)]
    g, segment, _ = concat_segments(layers, leading=1)  # (batches, Σ elements)
    sigma = g.std(dim=0, correction=0)
    ratio = torch.where(sigma != 0, g.abs().mean(0) / sigma, torch.zeros_like(sigma))
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
    return {"zico": zico_from_gradients(per_batch)}


PROXY = ProxyDef(
    name="zico",
    compute=compute,
    options_cls=ZicoOptions,
    components=("zico",),
    headline="zico",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="gradient mean/std ratio across two real batches, log-summed per layer",
)
