"""az_nas (AZ-NAS, CVPR'24; cvlab-yonsei/AZ-NAS ``NB201/ZeroShotProxy/compute_az_nas_score.py``):
three per-cell scores read off the features of a Kaiming-initialised network on a Gaussian
batch. Their combination with FLOPs, ``az_nas`` = Σ log-rank, needs the whole population of
cells and is the built-in ensemble of :mod:`raynas.ensemble` (score ``flops`` as well).

As the official code computes them, on a private copy in train mode, re-initialised from
the cell's seed (Conv/Linear weights Kaiming-normal, fan-in, ReLU gain; biases 0; BN γ = 1,
β = 0), with x ~ N(0, 1) of shape (64, 3, R, R) and the features f_0 = stem(x),
f_i = cell_i(f_{i−1}) (every module of ``model.cells``: NB201's cells and reduction blocks;
NB101's cells and the max-pools between its stacks, whose pairs the pixel-unshuffle handles):

* ``az_expressivity`` = Σ_i H_i, H_i the entropy of the normalised eigenvalues p of the
  channel covariance of f_i over batch and positions (H = −Σ p log(p + 1e−8));
* ``az_progressivity`` = min_i (H_i − H_{i−1});
* ``az_trainability`` = mean over adjacent pairs, from the top down, of −σ − 1/(σ + 1e−6) + 2,
  σ the largest singular value of M = g_inᵀ g_out / (B·H·W), g_out a Rademacher (±1) cotangent
  of f_i and g_in its vector-Jacobian product at f_{i−1} (pixel-unshuffled to f_i's size
  across a reduction). A pair whose g_in equals g_out exactly (an identity cell) scores −inf,
  as in the official code; a pair where f_i does not depend on f_{i−1} has g_in = 0 (the
  official ``Zero`` op multiplies by 0, so its gradient is 0 too), σ = 0 and scores −999,998.

Departures, each changing no ranking we could measure: the Rademacher draws and the
re-initialisation come from the cell's private seed (the official code draws from the global
RNG, so a score depended on the cells scored before it); covariances, eigenvalues and
singular values are taken in float64 (the official code: float32 on the GPU), so that they
are the same on every kernel to the rounding of the features themselves; a NaN component
stays NaN (the analysis ranks it last, as the official −inf does); a model without ``stem``
and ``cells`` is refused instead of failing inside.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.reinit import kaiming_reinit
from raynas.seeding import generator

ENTROPY_EPS = 1e-8
SIGMA_EPS = 1e-6


@dataclass(frozen=True)
class AzNasOptions:
    batch_size: int = 64  # AZ-NAS' NB201 setting


def cell_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """[stem output, each cell's output], the graph kept for the vector-Jacobian products."""
    if not (hasattr(model, "stem") and isinstance(getattr(model, "cells", None), nn.Sequential)):
        raise TypeError(f"az_nas reads each cell's output: {type(model).__name__} has no stem and chain of cells "
                        "(nn.Sequential; a DARTS cell reads the two cells before it)")
    features = [model.stem(x)]
    for cell in model.cells:
        features.append(cell(features[-1]))
    return features


def spectral_entropy(feature: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance over batch and positions."""
    channels = feature.shape[1]
    f = feature.detach().transpose(0, 1).reshape(channels, -1).double()
    f = f - f.mean(dim=1, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(f @ f.T / f.shape[1])
    p = eigenvalues / eigenvalues.sum()
    return float(-(p * torch.log(p + ENTROPY_EPS)).sum())


def pair_trainability(f_in: torch.Tensor, f_out: torch.Tensor, gen: torch.Generator) -> float:
    """−σ − 1/(σ + 1e−6) + 2 of one adjacent pair (see the module doc)."""
    g_out = (torch.randint(0, 2, f_out.shape, generator=gen) * 2 - 1).to(f_out)
    g_in = None
    if f_in.requires_grad and f_out.requires_grad:
        g_in = torch.autograd.grad(f_out, f_in, g_out, allow_unused=True)[0]
    g_in = torch.zeros_like(f_in) if g_in is None else g_in
    if g_in.shape == g_out.shape and bool(torch.equal(g_in, g_out)):
        return -math.inf
    if g_in.shape[2:] != g_out.shape[2:]:
        g_in = nn.functional.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    rows = g_out.shape[0] * g_out.shape[2] * g_out.shape[3]
    a = g_in.transpose(0, 1).reshape(g_in.shape[1], -1).double()
    b = g_out.transpose(0, 1).reshape(g_out.shape[1], -1).double()
    sigma = float(torch.linalg.svdvals(a @ b.T / rows).max())
    return -sigma - 1.0 / (sigma + SIGMA_EPS) + 2.0


def compute(model: nn.Module, batch: ProbeBatch, options: AzNasOptions, ctx: ProxyContext) -> dict[str, float]:
    net = copy.deepcopy(model).train()
    gen = generator(ctx.seed)
    kaiming_reinit(net, gen)
    features = cell_features(net, batch.inputs)
    entropies = [spectral_entropy(f) for f in features]
    progress = [b - a for a, b in zip(entropies, entropies[1:])]
    pairs = [pair_trainability(features[i - 1], features[i], gen) for i in reversed(range(1, len(features)))]
    return {
        "az_expressivity": sum(entropies),
        "az_progressivity": min(progress) if progress else math.nan,
        "az_trainability": sum(pairs) / len(pairs) if pairs else math.nan,
    }


PROXY = ProxyDef(
    name="az_nas",
    compute=compute,
    options_cls=AzNasOptions,
    components=("az_expressivity", "az_progressivity", "az_trainability"),
    headline="az_expressivity",
    probe=lambda o: ProbeSpec("gaussian", o.batch_size, None),
    description="AZ-NAS expressivity, progressivity and trainability of cell features (Gaussian batch; "
                "ensemble az_nas adds FLOPs)",
)
