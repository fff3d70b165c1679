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
exactly what ``torch.unique(dim=0)`` on the transposed matrix counts.

Regularised SWAP (``swap:mu=M,sigma=S``, the official ``regular=True``): each repeat's count
times exp(−(P − μ)²/σ), P the parameter count in thousands (parameters whose name holds
"auxiliary" left out, as ``count_parameters`` does), which steers a search towards size μ.
The official code takes μ and σ as arguments and states no NB201 values, so raynas has no
default: both are given or neither (the unregularised score).
"""

from __future__ import annotations

import copy
import math
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
    mu: float | None = None  # regularised SWAP: the preferred size, thousands of parameters
    sigma: float | None = None  # and the width of its Gaussian factor (both or neither)

    def __post_init__(self) -> None:
        if (self.mu is None) != (self.sigma is None):
            raise ValueError("swap mu and sigma go together: give both (regularised SWAP) or neither")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"swap sigma must be positive, got {self.sigma}")
        if not 2 <= self.batch_size <= MAX_SAMPLES:
            raise ValueError(f"swap batch_size must be in 2..{MAX_SAMPLES}, got {self.batch_size}")
        if self.repeats < 1:
            raise ValueError(f"swap repeats must be positive, got {self.repeats}")


def pattern_codes(signs: torch.Tensor) -> torch.Tensor:
    """(neurons,) int64: each neuron's signs across the samples as one integer, bit s = sample s.

    Packed a byte (8 samples) at a time in uint8 and only then widened: the same integers as
    summing ``sign · 2^s`` in int64, at an eighth of the memory traffic (the packing was ~40 %
    of SWAP's time on a CPU)."""
    samples, neurons = signs.shape
    codes = torch.zeros(neurons, dtype=torch.int64, device=signs.device)
    for start in range(0, samples, 8):
        byte = torch.zeros(neurons, dtype=torch.uint8, device=signs.device)
        for bit, row in enumerate(signs[start : start + 8]):
            byte |= row.to(torch.uint8) << bit
        codes |= byte.to(torch.int64) << start
    return codes


def distinct_patterns(model: nn.Module, inputs: torch.Tensor) -> int:
    """The number of distinct per-neuron sign patterns across the samples of ``inputs``."""
    signs = relu_output_signs(model, inputs)
    return 0 if signs is None else int(torch.unique(pattern_codes(signs)).numel())


def compute(model: nn.Module, batch: ProbeBatch, options: SwapOptions, ctx: ProxyContext) -> dict[str, float]:
    net = copy.deepcopy(model).train()
    gen = generator(ctx.seed)
    counts = []
    for _ in range(options.repeats):
        gaussian_reinit(net, gen)
        counts.append(distinct_patterns(net, batch.inputs))
    factor = 1.0 if options.mu is None else size_factor(model, options.mu, options.sigma)
    return {"swap": sum(count * factor for count in counts) / len(counts)}


def size_factor(model: nn.Module, mu: float, sigma: float) -> float:
    """exp(−(P − μ)²/σ), P = parameters in thousands (regularised SWAP's factor)."""
    thousands = sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e3
    return math.exp(-((thousands - mu) ** 2) / sigma)


PROXY = ProxyDef(
    name="swap",
    compute=compute,
    options_cls=SwapOptions,
    components=("swap",),
    headline="swap",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="distinct sample-wise ReLU activation patterns, averaged over Gaussian re-inits (real batch)",
)
