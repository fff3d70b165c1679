"""zen (Zen-NAS): on a private copy re-initialised from the cell's seed (Conv/Linear weights
N(0, 1), biases 0, BN γ = 1, β = 0), with x, ε ~ N(0, 1) and f the feature map before
global pooling (``model.forward_features``):

    zen = log mean_n Σ_chw |f(x) − f(x + 0.01 ε)|  +  Σ_BN log √mean(running_var)

under ``no_grad`` in train mode. As in the official code the BN term reads the running
variance after both forwards (momentum 0.1 from 1: 0.81 + 0.09 v₁ + 0.1 v₂), not the batch
variance; raynas keeps that for agreement with published Zen scores."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.reinit import gaussian_reinit
from raynas.seeding import generator


@dataclass(frozen=True)
class ZenOptions:
    batch_size: int = 64  # AZ-NAS' NB201 setting (Zen-NAS' CLI: 16)
    mixup_gamma: float = 0.01


def compute(model: nn.Module, batch: ProbeBatch, options: ZenOptions, ctx: ProxyContext) -> dict[str, float]:
    if not hasattr(model, "forward_features"):
        raise TypeError(f"zen needs the feature map before global pooling: {type(model).__name__} has no forward_features")
    net = copy.deepcopy(model).train()
    gen = generator(ctx.seed)
    gaussian_reinit(net, gen)
    x = batch.inputs
    noise = torch.randn(x.shape, generator=gen).to(x)
    with torch.no_grad():
        delta = (net.forward_features(x) - net.forward_features(x + options.mixup_gamma * noise)).abs()
        variances = [m.running_var.mean() for m in net.modules() if isinstance(m, _BatchNorm) and m.running_var is not None]
        bn = torch.stack(variances).double().sqrt().log().sum() if variances else delta.new_zeros((), dtype=torch.float64)
        expressivity, bn_term = torch.stack([delta.flatten(1).sum(1).mean().double().log(), bn]).tolist()
    return {"zen": expressivity + bn_term, "zen_expressivity": expressivity, "zen_bn": bn_term}


PROXY = ProxyDef(
    name="zen",
    compute=compute,
    options_cls=ZenOptions,
    components=("zen", "zen_expressivity", "zen_bn"),
    headline="zen",
    probe=lambda o: ProbeSpec("gaussian", o.batch_size, None),
    description="feature-map response to a small input perturbation after Gaussian re-init",
)
