"""The re-initialisations the peers' proxies score under, drawn from a private generator (the
cell's seed), never from the global RNG: Gaussian (Zen-NAS, SWAP) and Kaiming-normal fan-in
(AZ-NAS, VKDNW). Biases 0, BN and GroupNorm γ = 1, β = 0 in both, as their official code does."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _reinit(model: nn.Module, gen: torch.Generator, std_of) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen).mul_(std_of(m.weight)).to(m.weight))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (_BatchNorm, nn.GroupNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def gaussian_reinit(model: nn.Module, gen: torch.Generator) -> None:
    """Conv/Linear weights N(0, 1) (Zen-NAS' and SWAP's ``network_weight_gaussian_init``)."""
    _reinit(model, gen, lambda w: 1.0)


def kaiming_reinit(model: nn.Module, gen: torch.Generator) -> None:
    """AZ-NAS' ``kaiming_norm_fanin``: weights N(0, 2/fan_in), the ReLU gain."""
    _reinit(model, gen, lambda w: math.sqrt(2.0 / w[0].numel()))
