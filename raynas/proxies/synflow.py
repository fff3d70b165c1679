"""synflow (zero-cost-nas / NASLib): on a private float64 copy of the network with every
BatchNorm removed and every parameter replaced by its absolute value, R = Σ f(1) for one
all-ones image; score = Σ |W ⊙ ∂R/∂W| over Conv/Linear weights. Values span tens of orders
of magnitude across a space, so its natural log is stored too (``synflow_log``, the form
NASLib publishes). The caller's network is never modified."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.layers import weight_layers


@dataclass(frozen=True)
class SynflowOptions:
    pass


def without_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every BatchNorm replaced by an identity."""
    clone = copy.deepcopy(model)
    for module in list(clone.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(module, name, nn.Identity())
    return clone


def compute(model: nn.Module, batch: ProbeBatch, options: SynflowOptions, ctx: ProxyContext) -> dict[str, float]:
    net = without_batchnorm(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    layers = weight_layers(net)
    output = net(batch.inputs.double())
    grads = torch.autograd.grad(output.sum(), [m.weight for m in layers], allow_unused=True)
    total = float(sum((m.weight.detach() * g).abs().sum() for m, g in zip(layers, grads) if g is not None))
    return {"synflow": total, "synflow_log": math.log(total) if total > 0 else -math.inf}


PROXY = ProxyDef(
    name="synflow",
    compute=compute,
    options_cls=SynflowOptions,
    components=("synflow", "synflow_log"),
    headline="synflow_log",
    probe=lambda o: ProbeSpec("ones", 1, None),
    bn_mode="removed",
    description="synaptic flow of |w| on an all-ones input, BN removed, float64",
)
