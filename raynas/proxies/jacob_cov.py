"""jacob_cov (NASWOT v1, zero-cost-nas): J_n = ∂(Σ_c logit_c)/∂x_n per sample, C = the
correlation matrix of the rows of J (N×N), v its eigenvalues (``eigvalsh``: C is symmetric,
and the complex ``eig`` of the peers is a known trap), score = −Σ [log(v+k) + 1/(v+k)],
k = 1e-5. Higher means less correlated Jacobians."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import DegenerateNetwork, ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.gradient_pass import INPUT_JACOBIAN, gradient_pass

K = 1e-5


@dataclass(frozen=True)
class JacobCovOptions:
    batch_size: int = 64


def jacobian_score(jacobian: torch.Tensor) -> float:
    """−Σ log(v+k) + 1/(v+k) over eigenvalues v of corrcoef(rows of ``jacobian``)."""
    j = jacobian.detach().double()
    if bool((j.std(dim=1) == 0).any()):
        raise DegenerateNetwork("a sample's input Jacobian is constant; its correlation is undefined")
    eigenvalues = torch.linalg.eigvalsh(torch.corrcoef(j))
    return float(-(torch.log(eigenvalues + K) + 1.0 / (eigenvalues + K)).sum())


def compute(model: nn.Module, batch: ProbeBatch, options: JacobCovOptions, ctx: ProxyContext) -> dict[str, float]:
    jacobian = gradient_pass(model, batch, ctx, frozenset({INPUT_JACOBIAN})).input_jacobian
    return {"jacob_cov": jacobian_score(jacobian)}


PROXY = ProxyDef(
    name="jacob_cov",
    compute=compute,
    options_cls=JacobCovOptions,
    components=("jacob_cov",),
    headline="jacob_cov",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    shares=frozenset({INPUT_JACOBIAN}),
    description="correlation of input Jacobians across a batch (real batch)",
)
