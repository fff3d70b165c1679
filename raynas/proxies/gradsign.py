"""gradsign (GradSign, ICLR'22; cmu-catalyst/GradSign
``zero-cost-nas-code/foresight/pruners/measures/grad_conflict.py``): how consistently the
samples of a batch agree on the sign of each weight's gradient,

    gradsign = Σ_j |Σ_i sign(g_ij)|,

g_i the gradient of sample i's cross-entropy loss with respect to every Conv2d and Linear
weight (no biases, no BN parameters), computed on that sample alone (train-mode BN on a
batch of one), and ``gradsign_mean`` = the same averaged over weights instead of summed,
as AZ-NAS' port computes it (``NB201/ZeroShotProxy/compute_gradsign_score.py``: ``nanmean``;
its NB201 table, which the InTrain and GradAlign papers quote, is of this form).

As the official code computes it: a real batch (64 images: AZ-NAS' NB201 setting; the
official NASWOT-based script uses 128) with labels, default initialisation, weights the
loss does not reach counting as zero gradients. Departures: the per-sample gradients come
from one batched pass with per-sample BN (:mod:`raynas.proxies.persample`, bit for bit the
batch-of-one normalisation the official loop runs) instead of N forward/backward passes,
falling back to that loop for networks without closed forms; the batch is class-balanced,
as for every raynas real-data proxy. The weights read here have no rounding-noise zeros
(issue 21's noise tensors are BN shifts, which GradSign does not read), so no threshold
is needed: an exact zero gradient (a dead ReLU) has sign 0 under every kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies import persample
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_logits
from raynas.proxies.layers import weight_layers


@dataclass(frozen=True)
class GradSignOptions:
    batch_size: int = 64  # AZ-NAS' NB201 setting


def agreement_batched(model: nn.Module, batch: ProbeBatch, weights: set[int]) -> float | None:
    """Σ_j |Σ_i sign(g_ij)| over the weights ``weights`` (ids) from the batched per-sample
    pass (each weight's columns come once, in pieces), or None when the network has a layer
    without a closed form. Column sums of N signs are exact in float32, their total in float64."""
    total = [0.0]

    def consume(param: torch.Tensor, piece: torch.Tensor) -> None:
        if id(param) in weights:
            total[0] += float(piece.sign().sum(0).abs().double().sum())

    ok = persample.stream_per_sample_gradients(model, batch.inputs, batch.labels, "per_sample", consume)
    return total[0] if ok else None


def agreement_looped(model: nn.Module, batch: ProbeBatch, weights: list[torch.Tensor]) -> float:
    """The same by the official loop: one forward and backward per sample."""
    sums = [torch.zeros_like(w) for w in weights]
    model.train()
    for i in range(len(batch)):
        loss = F.cross_entropy(model(batch.inputs[i : i + 1]), batch.labels[i : i + 1])
        for total, g in zip(sums, torch.autograd.grad(loss, weights, allow_unused=True)):
            if g is not None:
                total += g.detach().sign()
    return float(sum(s.abs().double().sum() for s in sums))


def compute(model: nn.Module, batch: ProbeBatch, options: GradSignOptions, ctx: ProxyContext) -> dict[str, float]:
    with torch.no_grad():
        forward_logits(model.train(), batch.inputs[:2])  # a network that ignores its input has no score
    weights = [m.weight for m in weight_layers(model)]
    total = agreement_batched(model, batch, {id(w) for w in weights})
    if total is None:
        total = agreement_looped(model, batch, weights)
    count = sum(w.numel() for w in weights)  # weights the loss does not reach count, as zeros
    return {"gradsign": total, "gradsign_mean": total / count}


PROXY = ProxyDef(
    name="gradsign",
    compute=compute,
    options_cls=GradSignOptions,
    components=("gradsign", "gradsign_mean"),
    headline="gradsign",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    per_sample_grads=True,
    bn_mode="per_sample",
    description="agreement of per-sample gradient signs over Conv/Linear weights (real batch)",
)
