"""te_nas (TE-NAS, ICLR'21; VITA-Group/TENAS ``lib/procedures/ntk.py`` and
``linear_region_counter.py``, scored per architecture as AZ-NAS' port does it,
``NB201/ZeroShotProxy/compute_te_nas_score.py``): two indicators whose rank sum is the
TE-NAS ensemble of :mod:`raynas.ensemble` (``te_nas``).

* ``te_nas_ntk`` = −κ, κ = λ_max/λ_min of the empirical NTK Θ = J Jᵀ on a real batch of 64
  in train mode, J's row i the gradient of sample i's summed logits with respect to every
  parameter named ``weight`` (Conv, Linear and BN weights), each taken by its own backward
  through the batch's graph (train-mode BN couples the samples, as in the official code);
  a NaN κ becomes 1e5, as in the official code. Higher (a better-conditioned NTK) is better.
* ``te_nas_lr``: the number of distinct ReLU activation patterns among a Gaussian batch of
  64 (the sign of every ReLU's output over the whole network, for ReLUs on 4-D inputs),
  the official linear-region count Σ_i 1/#{j : pattern_j = pattern_i}. Higher is better.

Departures: TE-NAS itself prunes a supernet by the *change* of both indicators when an op
is removed; scoring single architectures by the indicators themselves is how AZ-NAS (and
the tables the seed papers quote) evaluate it, and what raynas follows. The Gaussian batch
is drawn from the cell's private seed (the official code: the global RNG); the NTK is
accumulated in float64 (official: float32), so that κ agrees across kernels to the
rounding of the gradients; patterns are compared exactly (``torch.unique``) where the
official code counts them with a half-precision product that gives the same count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.activations import relu_output_signs
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_logits
from raynas.seeding import generator

NAN_CONDITION = 1e5  # the official np.nan_to_num(..., nan=100000.0)
GRAM_COLUMNS = 1 << 18  # columns of J per float64 block of the Gram product


@dataclass(frozen=True)
class TeNasOptions:
    batch_size: int = 64  # AZ-NAS' NB201 setting, for the NTK and the linear regions alike


def ntk_condition(model: nn.Module, inputs: torch.Tensor) -> float:
    """κ of the empirical NTK (see the module doc), NaN → 1e5."""
    weights = [p for name, p in model.named_parameters() if "weight" in name]
    model.train()
    logits = forward_logits(model, inputs)
    rows = []
    for i in range(len(inputs)):
        grads = torch.autograd.grad(logits[i].sum(), weights, retain_graph=i + 1 < len(inputs), allow_unused=True)
        rows.append(torch.cat([g.detach().flatten() for g in grads if g is not None]))
    jacobian = torch.stack(rows)
    gram = torch.zeros(len(rows), len(rows), dtype=torch.float64, device=jacobian.device)
    for start in range(0, jacobian.shape[1], GRAM_COLUMNS):
        block = jacobian[:, start : start + GRAM_COLUMNS].double()
        gram += block @ block.T
    eigenvalues = torch.linalg.eigvalsh(gram)
    condition = float(eigenvalues[-1] / eigenvalues[0])
    return NAN_CONDITION if math.isnan(condition) else condition


def activation_patterns(model: nn.Module, inputs: torch.Tensor) -> int:
    """The number of distinct ReLU activation patterns among the samples of ``inputs``."""
    signs = relu_output_signs(model, inputs)
    return 0 if signs is None else int(torch.unique(signs, dim=0).shape[0])


def compute(model: nn.Module, batch: ProbeBatch, options: TeNasOptions, ctx: ProxyContext) -> dict[str, float]:
    condition = ntk_condition(model, batch.inputs)
    gaussian = torch.randn(batch.inputs.shape, generator=generator(ctx.seed)).to(batch.inputs)
    return {"te_nas_ntk": -condition, "te_nas_lr": float(activation_patterns(model.train(), gaussian))}


PROXY = ProxyDef(
    name="te_nas",
    compute=compute,
    options_cls=TeNasOptions,
    components=("te_nas_ntk", "te_nas_lr"),
    headline="te_nas_ntk",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="TE-NAS: minus the NTK condition number (real batch) and the linear-region count "
                "(Gaussian batch); ensemble te_nas ranks both",
)
