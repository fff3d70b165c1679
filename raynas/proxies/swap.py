"""swap (SWAP-Score, ICLR'24; pym1024/SWAP ``src/metrics/swap.py``, ``correlation.py``): the
number of distinct sample-wise activation patterns.

As the official code computes it: on a real batch of 16, a forward under ``no_grad`` with a
hook on every ``nn.ReLU`` whose input is 4-D; each ReLU output flattened per sample and
concatenated, its sign (0 or 1) taken; per neuron, the pattern of its 16 signs across the
samples; SWAP = the number of distinct neuron patterns. Repeated 32 times, each after a
Gaussian re-initialisation (Conv/Linear weights N(0, 1), biases 0, BN γ = 1, β = 0), and
averaged.

Departures: the re-initialisations come from the cell's private seed (the official code
draws them from the global RNG); patterns are compared as packed integers, which counts
exactly what ``torch.unique(dim=0)`` on the transposed matrix counts. Not built: the
regularised SWAP (× exp(−(params − μ)²/σ)), whose μ and σ the official code takes as
arguments and does not state for NB201.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.activations import relu_output_signs
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.reinit import gaussian_reinit
from raynas.seeding import generator

MAX_SAMPLES = 62  # patterns are packed into int64 bits


@dataclass(frozen=True)
class SwapOptions:
    batch_size: int = 16  # the official ``--input_samples``
    repeats: int = 32  # the official ``--repeats``

    def __post_init__(self) -> None:
        if not 2 <= self.batch_size <= MAX_SAMPLES:
            raise ValueError(f"swap batch_size must be in 2..{MAX_SAMPLES}, got {self.batch_size}")
        if self.repeats < 1:
            raise ValueError(f"swap repeats must be positive, got {self.repeats}")


def distinct_patterns(model: nn.Module, inputs: torch.Tensor) -> int:
    """The number of distinct per-neuron sign patterns across the samples of ``inputs``."""
    signs = relu_output_signs(model, inputs)
    if signs is None:
        return 0
    bits = signs.to(torch.int64)  # (samples, neurons)
    weights = torch.bitwise_left_shift(torch.ones(len(inputs), 1, dtype=torch.int64, device=bits.device),
                                       torch.arange(len(inputs), device=bits.device).unsqueeze(1))
    return int(torch.unique((bits * weights).sum(0)).numel())


def compute(model: nn.Module, batch: ProbeBatch, options: SwapOptions, ctx: ProxyContext) -> dict[str, float]:
    net = copy.deepcopy(model).train()
    gen = generator(ctx.seed)
    counts = []
    for _ in range(options.repeats):
        gaussian_reinit(net, gen)
        counts.append(distinct_patterns(net, batch.inputs))
    return {"swap": sum(counts) / len(counts)}


PROXY = ProxyDef(
    name="swap",
    compute=compute,
    options_cls=SwapOptions,
    components=("swap",),
    headline="swap",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="distinct sample-wise ReLU activation patterns, averaged over Gaussian re-inits (real batch)",
)
