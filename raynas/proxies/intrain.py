"""InTrain (intrinsic trainability): I = γ · (1 + o) / log(L + 1).

γ = Σ_ℓ log PR_ℓ over layer activations (participation ratio of the channel covariance),
o = Σ_i min(1, std(g_i) / max|g_i|) over parameter gradients, from one forward and one
backward on a Gaussian batch with random labels, BN in train mode (cross-entropy; for a
regression or dense output, the mean squared error against a N(0, 1) target of its shape, as
the paper prescribes for dense outputs: :func:`raynas.proxies.base.probe_loss`).
Spec and open choices: ``shared/docs/seed-proxies.md``; measured choices: docs/history.md.

Rounding noise (``noise_tol``): some tensors' exact gradient is zero — a BN shift whose
per-channel constant a later train-mode BN removes — and in floating point they hold
rounding noise, whose std/max ratio is an arbitrary number in [0, 1] that changes with the
convolution kernel, the thread count and the device. A tensor whose max|g| is at most
``noise_tol`` times the network's largest |g| therefore counts as zero: it adds 0 to o and
is counted in ``o_zero_tensors``. ``benchmarks/gradient_noise.py`` finds no clean gap on
NB201 (noise up to 3.8e-8 of the largest |g|, real tensors down to 1e-12, whose ratios
float32 does not reproduce either); the default 1e-6 is 26x above that noise and 49x below
NB101's smallest gradient, and was chosen by what it does between kernels (docs/history.md,
"Rounding noise in gradients"). ``noise_tol=0`` is the definition before it (only exact
zeros count as zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_hooks, forward_logits, probe_loss
from raynas.proxies.segments import concat_segments, segment_sum

LAYER_TYPES = {"conv_linear": (nn.Conv2d, nn.Linear), "conv": (nn.Conv2d,)}
GRAD_PARAMS = ("multi_element", "all", "weights")
NOISE_TOL = 1e-6  # measured: docs/history.md, "Rounding noise in gradients"


@dataclass(frozen=True)
class InTrainOptions:
    batch_size: int = 64
    resolution: int = 32  # paper: 64 (OPEN); 32 measured better, see docs/history.md
    layers: str = "conv_linear"  # which module outputs enter γ: conv_linear | conv
    grad_params: str = "multi_element"  # which tensors enter o: multi_element | all | weights
    eps: float = 1e-10  # ridge added to each covariance
    dead_tol: float = 1e-8  # layer is collapsed when tr(Cov) <= dead_tol · E‖a‖²
    # gradient tensors with max|g| <= noise_tol · (largest |g|) count as zero (module doc);
    # runs recorded before the option existed used 0
    noise_tol: float = field(default=NOISE_TOL, metadata={"absent": 0.0})

    def __post_init__(self) -> None:
        if self.layers not in LAYER_TYPES:
            raise ValueError(f"intrain layers must be one of {sorted(LAYER_TYPES)}, got {self.layers!r}")
        if self.grad_params not in GRAD_PARAMS:
            raise ValueError(f"intrain grad_params must be one of {GRAD_PARAMS}, got {self.grad_params!r}")
        if not 0 <= self.noise_tol < 1:
            raise ValueError(f"intrain noise_tol must be in [0, 1), got {self.noise_tol}")


def activation_rows(activation: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N·H·W, C); (N, C) stays; channels are the last axis."""
    if activation.dim() == 4:
        return activation.permute(0, 2, 3, 1).reshape(-1, activation.shape[1])
    if activation.dim() == 2:
        return activation
    raise ValueError(f"unsupported activation shape {tuple(activation.shape)}")


# float64 activations stacked per batched PR computation, by device: on a GPU, stacking cuts
# ~30 kernel launches per layer to ~30 per shape; on a CPU, where a launch costs nothing, it
# only adds copies and page faults (measured: 35% slower), so layers go one at a time.
GROUP_BYTES = {"cuda": 256 * 2**20, "cpu": 0}


def participation_ratios(activations: list[torch.Tensor], eps: float = 1e-10, dead_tol: float = 1e-8) -> torch.Tensor:
    """PR = (tr C)² / tr(C²) of C = Cov(rows) + εI, in [1, channels], of every activation,
    as a float64 vector on their device. On a GPU, layers whose activations have one shape
    are stacked and computed together (a few batched kernels per shape, not ~30 per
    layer), in groups of at most :data:`GROUP_BYTES`.

    A collapsed layer — all-zero or constant activation, whose covariance is negligible next
    to its second moment — counts as PR = 1; otherwise the ridge alone would give the
    *maximal* PR = C.
    """
    ratios: list[torch.Tensor | None] = [None] * len(activations)
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(activations):
        by_shape.setdefault((tuple(a.shape), a.device), []).append(i)
    for (shape, device), members in by_shape.items():
        # Rows are made per group, not for all layers at once: each is a permuted copy.
        layer_bytes = 8 * math.prod(shape)
        per_group = max(1, GROUP_BYTES.get(device.type, 0) // layer_bytes)
        for k in range(0, len(members), per_group):
            group = members[k : k + per_group]
            rows = [activation_rows(activations[i].detach()) for i in group]
            stacked = rows[0].double().unsqueeze(0) if len(rows) == 1 else torch.stack(rows).double()
            for i, value in zip(group, stacked_ratios(stacked, eps, dead_tol).unbind()):
                ratios[i] = value
    if not ratios:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack(ratios)


def stacked_ratios(rows: torch.Tensor, eps: float, dead_tol: float) -> torch.Tensor:
    """PRs of a stack (G, n, C) of activation rows (float64)."""
    n, channels = rows.shape[1:]
    second_moment = rows.pow(2).sum(2).mean(1)
    centred = rows - rows.mean(1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / n
    trace = cov.diagonal(dim1=1, dim2=2).sum(-1)
    frob2 = cov.pow(2).sum((1, 2)) + 2 * eps * trace + channels * eps**2
    collapsed = (second_moment <= 0) | (trace <= dead_tol * second_moment)
    return torch.where(collapsed, torch.ones_like(trace), (trace + channels * eps) ** 2 / frob2)


def participation_ratio(activation: torch.Tensor, eps: float = 1e-10, dead_tol: float = 1e-8) -> torch.Tensor:
    """The PR of one activation (a float64 scalar tensor)."""
    return participation_ratios([activation], eps, dead_tol)[0]


def gradient_resilience(grads: list[torch.Tensor], batched: bool | None = None,
                        noise_tol: float = 0.0) -> torch.Tensor:
    """r_i = min(1, std(g_i) / max|g_i|) (population std) per gradient tensor, 0 for a
    tensor whose max|g_i| is at most ``noise_tol`` times the largest of all (0 for an
    all-zero one), NaN for a non-finite one, as a float64 vector on their device. On a
    GPU all tensors at once (one concatenated vector and segment reductions: ~10 kernels,
    not ~6 per tensor); on a CPU tensor by tensor, which is 4× faster there (``batched``
    overrides the choice)."""
    if not grads:
        return torch.zeros(0, dtype=torch.float64)
    if not (grads[0].device.type != "cpu" if batched is None else batched):
        flats = [g.detach().double().flatten() for g in grads]
        peak = torch.stack([f.abs().max() for f in flats])
        # (f − mean)² by hand: aten::std reads a scalar back to the host on every call.
        std = torch.stack([(f - f.mean()).pow(2).mean().sqrt() for f in flats])
        zeros = peak.new_zeros(len(grads))
    else:
        flat, segment, sizes = concat_segments([g.detach() for g in grads])
        flat = flat.double()
        zeros = flat.new_zeros(len(grads))
        peak = zeros.scatter_reduce(0, segment, flat.abs(), "amax", include_self=False)
        mean = segment_sum(flat, segment, len(grads)) / sizes
        std = (segment_sum((flat - mean[segment]).pow(2), segment, len(grads)) / sizes).sqrt()
    return resilience(peak, std, noise_tol)


def resilience(peak: torch.Tensor, std: torch.Tensor, noise_tol: float, owner: torch.Tensor | None = None,
               networks: int = 1) -> torch.Tensor:
    """r from each tensor's max|g| and std: min(1, std/peak), 0 where peak is at most
    ``noise_tol`` times its network's largest finite peak, NaN where it is not finite.
    ``owner`` (tensor → network, for several networks' tensors at once, the fused path):
    each network's own largest peak."""
    zeros = peak.new_zeros(peak.shape)
    ratio = torch.clamp(std / peak, max=1.0)
    finite = torch.where(peak.isfinite(), peak, zeros)
    if owner is None:
        scale = finite.max()  # the largest finite |g|
    else:
        scale = peak.new_zeros(networks).scatter_reduce(0, owner, finite, "amax", include_self=False)[owner]
    real = peak > noise_tol * scale
    return torch.where(real, ratio, torch.where(peak.isfinite(), zeros, torch.full_like(zeros, float("nan"))))


def _grad_tensors(model: nn.Module, which: str) -> list[torch.Tensor]:
    if which == "weights":
        tensors = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    else:
        tensors = [p for p in model.parameters() if which == "all" or p.numel() > 1]
    return [p.grad for p in tensors if p.grad is not None]


def compute(model: nn.Module, batch: ProbeBatch, options: InTrainOptions, ctx: ProxyContext) -> dict[str, float]:
    activations: list[torch.Tensor] = []

    def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        activations.append(output)

    model.train()
    with forward_hooks((m for m in model.modules() if isinstance(m, LAYER_TYPES[options.layers])), record):
        logits = forward_logits(model, batch.inputs)
    # Before the backward, while autograd still holds the activations anyway.
    ratios = participation_ratios(activations, options.eps, options.dead_tol).to(logits.device)
    activations.clear()  # the PRs are all that is kept of them
    probe_loss(logits, batch).backward()

    # Everything stays on the device until this one read-back.
    r = gradient_resilience(_grad_tensors(model, options.grad_params), noise_tol=options.noise_tol)
    return components(ratios, r.to(logits.device))


def sums(ratios: torch.Tensor, resilience: torch.Tensor) -> torch.Tensor:
    """(γ, o, zero-gradient tensors) on the device, not yet read back."""
    return torch.stack([ratios.log().sum(), resilience.sum(), (resilience == 0).sum().double()])


def components(ratios: torch.Tensor, resilience: torch.Tensor) -> dict[str, float]:
    """InTrain's components from the layers' participation ratios and the gradient tensors'
    resilience (the per-cell and the fused path, :mod:`raynas.fused.intrain`, share it)."""
    return from_sums(sums(ratios, resilience).tolist(), len(ratios))


def from_sums(values: list[float], n_layers: int) -> dict[str, float]:
    gamma, o, zero = values
    return {
        "gamma": gamma,
        "o": o,
        "L": float(n_layers),
        "o_zero_tensors": zero,
        "intrain": gamma * (1.0 + o) / math.log(n_layers + 1),
    }


PROXY = ProxyDef(
    name="intrain",
    compute=compute,
    options_cls=InTrainOptions,
    components=("intrain", "gamma", "o", "L", "o_zero_tensors"),
    headline="intrain",
    probe=lambda o: ProbeSpec("gaussian", o.batch_size, o.resolution),
    higher_is_better=True,
    description="geometric capacity x optimisation resilience / log(L+1) (Gaussian batch)",
    diagnostics=("L", "o_zero_tensors"),
)
