"""meco (MeCo, NeurIPS'23; HamsterMimi/MeCo ``correlation/NAS_Bench_201.py``): the sum, over
every module's output on one real image, of the smallest eigenvalue of the correlation
matrix of its channels (each channel's H·W values one variable). ``meco_opt`` is the
paper's cheaper variant: the same on 8 randomly chosen channels, scaled by C/8.

As the official code computes it: a forward hook on every module the forward runs
(``named_modules()``: the network itself and containers included, so a tensor that a
container returns is counted once per module that returns it), reading the output's
first sample reshaped to (C, ·); NaN and ±inf entries of the correlation matrix (constant
channels) become 0; per-module results that are NaN or ±inf are dropped; the batch is one
real training image (``probe=gaussian``: N(0, 1) noise, as MeCo's own registry measure
``measures/meco.py`` draws it at 64×64 — raynas at the dataset's resolution — which needs no
images, so it runs on ImageNet16-120 too); default PyTorch initialisation, train mode (BN
normalises over the image's positions).

Departures, and why:

* raynas hooks the benchmark's own network (xautodl's module tree), not foresight's
  re-implementation that MeCo scores. Its values are the same (foresight's cells have
  affine-free BN and biased convolutions, which a channel correlation cannot see), but
  foresight wraps the stem, each ReLU-Conv-BN op, each pooling op and each stage in one
  more module, so those outputs are counted once more there. The scores are therefore not
  numerically the official ones; their ranking is compared in docs/history.md.
* ``none`` edges are not run (the benchmark network skips them); the official ``Zero`` op's
  all-zero output gives a zero matrix whose smallest eigenvalue, 0, adds nothing.
* eigenvalues by ``eigvalsh`` in float64 (the matrix is symmetric; the official complex
  ``eig`` returns the same values to rounding), so they agree across kernels.
* ``meco_opt``'s 8 channels are drawn from the cell's private seed, per module in the
  order the forward runs them (the official code draws from Python's global ``random``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_hooks
from raynas.seeding import generator

OPT_CHANNELS = 8


PROBES = ("real", "gaussian")


@dataclass(frozen=True)
class MecoOptions:
    batch_size: int = 1  # the official NB201 setting: one image; only the first sample is read
    # real: one training image (the official NB201 script); gaussian: N(0, 1) noise at the
    # dataset's resolution, as MeCo's own registry measure (``measures/meco.py``) draws it,
    # which needs no images (ImageNet16-120). Added after the first runs: absent means real.
    probe: str = field(default="real", metadata={"absent": "real"})

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ValueError(f"meco probe must be one of {PROBES}, got {self.probe!r}")


def smallest_correlation_eigenvalue(feature: torch.Tensor) -> float:
    """λ_min of the correlation matrix of the rows of ``feature`` (C × n), NaN entries → 0
    (with one value per row every entry is NaN: the zero matrix, λ_min = 0)."""
    if feature.shape[1] < 2:
        return 0.0
    corr = torch.corrcoef(feature.double())
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros((), dtype=corr.dtype))
    return float(torch.linalg.eigvalsh(corr).min())


def compute(model: nn.Module, batch: ProbeBatch, options: MecoOptions, ctx: ProxyContext) -> dict[str, float]:
    gen = generator(ctx.seed)
    full: list[float] = []
    opt: list[float] = []

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 1:
            return
        first = output[0].detach()
        feature = first.reshape(first.shape[0], -1) if first.dim() else first.reshape(1, 1)
        channels = feature.shape[0]
        full.append(smallest_correlation_eigenvalue(feature))
        chosen = torch.randperm(channels, generator=gen)[:OPT_CHANNELS].to(feature.device)
        opt.append(smallest_correlation_eigenvalue(feature[chosen]) * channels / OPT_CHANNELS)

    model.train()
    with torch.no_grad(), forward_hooks(model.modules(), hook):
        model(batch.inputs[: options.batch_size])
    return {"meco": _finite_sum(full), "meco_opt": _finite_sum(opt)}


def _finite_sum(values: list[float]) -> float:
    return math.fsum(v for v in values if math.isfinite(v))


PROXY = ProxyDef(
    name="meco",
    compute=compute,
    options_cls=MecoOptions,
    components=("meco", "meco_opt"),
    headline="meco",
    # raynas' Gaussian batches hold at least two samples; the forward takes the first batch_size
    probe=lambda o: ProbeSpec(o.probe, max(o.batch_size, 2) if o.probe == "gaussian" else o.batch_size, None),
    description="sum over modules of the smallest eigenvalue of the channel correlation matrix (one real image, "
                "or probe=gaussian)",
)
