"""vkdnw (VKDNW, CVPR'25; ondratybl/VKDNW ``NB201/ZeroShotProxy/compute_vkdnw_score.py``,
combined as ``NB201/tss_utils.py`` does): the spectrum of a small Fisher information matrix.

As the official code computes it, on a private copy re-initialised Kaiming-normal (fan-in;
biases 0, BN γ = 1, β = 0) in eval mode, with a Gaussian batch of 32:

* one scalar per parameter tensor, its first element θ_k (k = 1..ℵ, ℵ = the number of
  parameter tensors: conv, BN and linear weights and biases alike);
* per sample n, the Jacobian J_n (C × ℵ) of the logits with respect to those scalars, and
  A_n = L_n J_n, L_n the official lower-triangular factor of the smoothed softmax covariance
  (p = 0.95·softmax + 0.05/C, with 0.05 rounded to float16 as the official code stores it;
  the official code forms F with L J, so F = mean_n J_nᵀ L_nᵀ L_n J_n);
* λ = the singular values of F = mean_n A_nᵀ A_n, their quantiles at 0.1, ..., 0.9, and
  ``vkdnw_entropy`` H = −Σ t log(t + 1e−10), t = quantiles / (Σ|quantiles| + 1e−10);
* ``vkdnw_dim`` = ℵ, and ``vkdnw_single``, the paper's VKDNW_single ranking — cells ordered
  by (ℵ, H) lexicographically — as one number, ℵ + H / (2 log 9): H ≤ log 9 for 9 quantiles,
  so this orders cells exactly as the official dense rank of the pair does.

VKDNW_agg (the ensemble ``vkdnw_agg`` of :mod:`raynas.ensemble`) adds the log-ranks of AZ-NAS'
expressivity and trainability, FLOPs and jacob_cov, as ``tss_utils.get_scores`` does.

Departures: the re-initialisation and the Gaussian batch come from the cell's private seed
(official: the global RNG); the Fisher matrix and its spectrum are taken in float64
(official: float32), so that the quantiles, which span many orders of magnitude, agree
across kernels; the official ``rank(method="dense")`` of (ℵ, H) is replaced by the
order-preserving number above, so that the score is per cell (an ensemble ranks it).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

from raynas.probes import ProbeBatch
from raynas.proxies.base import DegenerateNetwork, ProbeSpec, ProxyContext, ProxyDef
from raynas.proxies.reinit import kaiming_reinit
from raynas.seeding import generator

SMOOTHING = float(torch.tensor(0.05, dtype=torch.float16))  # the official alpha, a float16 tensor
QUANTILES = torch.arange(0.1, 1.0, 0.1)  # float32, as the official code builds them: 0.1, ..., 0.9
EPS = 1e-10
SINGLE_SCALE = 2 * math.log(len(QUANTILES))  # H / SINGLE_SCALE < 1: ℵ stays the leading key


@dataclass(frozen=True)
class VkdnwOptions:
    batch_size: int = 32  # the official NB201 setting


def covariance_factor(logits: torch.Tensor) -> torch.Tensor:
    """The official (N, C, C) lower-triangular factor L with L Lᵀ = diag(p) − p pᵀ of the
    smoothed softmax p (the official Cholesky construction, in the logits' dtype)."""
    n, c = logits.shape
    prob = F.softmax(logits, dim=1) * (1 - SMOOTHING) + SMOOTHING / c
    q = 1 - torch.cumsum(prob, dim=1)
    q[:, -1] = 0
    q_shift = torch.roll(q, shifts=1, dims=1)
    q_shift[:, 0] = 1
    d = torch.sqrt(prob * q / q_shift)
    factor = torch.nan_to_num(-prob.unsqueeze(2) / q.unsqueeze(1), neginf=0.0)
    eye = torch.eye(c, dtype=logits.dtype, device=logits.device)
    factor = torch.tril(factor * (1 - eye) + eye)
    return factor * d.unsqueeze(1)


CLASS_CHUNK = 16  # classes per batched backward of the closed-form path
SAMPLE_CHUNK = 4  # samples per vmap call of the official path


def first_element_jacobian(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """(N, C, ℵ): ∂ logits_n / ∂ (first element of each parameter tensor), per sample, in
    some fixed order of the tensors (F's spectrum does not depend on it). By closed forms
    where every parameter belongs to an eval-mode Conv2d, BatchNorm2d or Linear (one
    batched backward per chunk of classes: samples do not mix in eval mode), else by
    ``vmap(jacrev(...))`` as the official code does."""
    closed = closed_form_jacobian(net, inputs)
    return closed if closed is not None else autograd_jacobian(net, inputs)


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, nn.BatchNorm2d):
        return module.track_running_stats and module.running_mean is not None
    return isinstance(module, nn.Linear)


def closed_form_jacobian(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor | None:
    """The closed-form path of :func:`first_element_jacobian`, or None where it does not apply."""
    layers = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    owned = {id(p) for m in layers for p in m.parameters(recurse=False)}
    if net.training or not all(_supported(m) for m in layers) or len(owned) != len(list(net.parameters())):
        return None
    calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        calls.append((module, args[0].detach(), output))

    handles = [m.register_forward_hook(record) for m in layers]
    try:
        logits = net(inputs)
    finally:
        for h in handles:
            h.remove()
    if any(isinstance(m, nn.Linear) and x.dim() != 2 for m, x, _ in calls):
        return None
    n, classes = logits.shape
    reached = [(m, x, y) for m, x, y in calls if y.requires_grad]
    columns: dict[int, torch.Tensor] = {id(p): logits.new_zeros(n, classes) for p in net.parameters()}
    for start in range(0, classes, CLASS_CHUNK):
        stop = min(start + CLASS_CHUNK, classes)
        cotangents = torch.zeros(stop - start, n, classes, dtype=logits.dtype, device=logits.device)
        cotangents[torch.arange(stop - start), :, torch.arange(start, stop)] = 1
        grads = torch.autograd.grad(logits, [y for _, _, y in reached], cotangents, retain_graph=stop < classes,
                                    is_grads_batched=True, allow_unused=True)
        for (module, x, _), g in zip(reached, grads):
            if g is None:
                continue
            for param, value in _first_element_gradients(module, x, g[:, :, 0]).items():
                columns[id(param)][:, start:stop] += value.T
    return torch.stack(list(columns.values()), dim=2)


def _first_element_gradients(module: nn.Module, x: torch.Tensor, g0: torch.Tensor) -> dict:
    """{parameter: (classes, N) derivative by its first element}, from the layer input ``x``
    and the gradient ``g0`` (classes, N, ...) at the layer's first output channel."""
    spatial = tuple(range(2, g0.dim()))
    out = {}
    if module.bias is not None:
        out[module.bias] = g0.sum(spatial) if spatial else g0
    if isinstance(module, nn.Linear):
        out[module.weight] = g0 * x[:, 0]
    elif isinstance(module, nn.BatchNorm2d):
        normalised = (x[:, 0] - module.running_mean[0]) / torch.sqrt(module.running_var[0] + module.eps)
        out[module.weight] = (g0 * normalised).sum(spatial)
    else:  # Conv2d: the (0, 0) kernel tap of input channel 0 under output channel 0
        (ph, pw), (sh, sw), (dh, dw) = module.padding, module.stride, module.dilation
        padded = F.pad(x[:, 0], (pw, pw, ph, ph))
        h, w = g0.shape[-2:]
        taps = padded[:, : (h - 1) * sh + 1 : sh, : (w - 1) * sw + 1 : sw]
        out[module.weight] = (g0 * taps).sum(spatial)
    return out


def autograd_jacobian(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The official way: ``vmap`` over samples of ``jacrev`` over the first elements."""
    params = {k: p.detach() for k, p in net.named_parameters()}
    buffers = {k: b.detach() for k, b in net.named_buffers()}
    onehots = {k: F.one_hot(torch.zeros((), dtype=torch.long), p.numel()).reshape(p.shape).to(p) for k, p in params.items()}
    firsts = {k: p.flatten()[0] for k, p in params.items()}

    def logits_of(scalars: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        full = {k: params[k] + (scalars[k] - firsts[k]) * onehots[k] for k in params}
        return functional_call(net, (full, buffers), (x.unsqueeze(0),)).squeeze(0)

    chunks = []
    for start in range(0, len(inputs), SAMPLE_CHUNK):  # vmap's memory grows with samples × classes
        per_sample = vmap(jacrev(logits_of), in_dims=(None, 0))(firsts, inputs[start : start + SAMPLE_CHUNK])
        chunks.append(torch.stack([per_sample[k] for k in params], dim=2))
    return torch.cat(chunks)


def spectrum_entropy(fisher: torch.Tensor) -> float:
    """H of the normalised quantiles of F's singular values (see the module doc)."""
    singular = torch.linalg.svdvals(fisher)
    quantiles = torch.quantile(singular, QUANTILES.to(singular))
    t = quantiles / (quantiles.abs().sum() + EPS)
    return float(-(t * torch.log(t + EPS)).sum())


def compute(model: nn.Module, batch: ProbeBatch, options: VkdnwOptions, ctx: ProxyContext) -> dict[str, float]:
    net = copy.deepcopy(model).eval()
    gen = generator(ctx.seed)
    kaiming_reinit(net, gen)
    with torch.no_grad():
        logits = net(batch.inputs)
    if len(logits) > 1 and bool((logits == logits[:1]).all()):
        raise DegenerateNetwork("network output is identical for every input")
    jacobian = first_element_jacobian(net, batch.inputs).double()
    scaled = covariance_factor(logits.double()) @ jacobian
    fisher = (scaled.transpose(1, 2) @ scaled).mean(0)
    entropy = spectrum_entropy(fisher)
    dim = float(jacobian.shape[2])
    return {"vkdnw_single": dim + entropy / SINGLE_SCALE, "vkdnw_entropy": entropy, "vkdnw_dim": dim}


PROXY = ProxyDef(
    name="vkdnw",
    compute=compute,
    options_cls=VkdnwOptions,
    components=("vkdnw_single", "vkdnw_entropy", "vkdnw_dim"),
    headline="vkdnw_single",
    probe=lambda o: ProbeSpec("gaussian", o.batch_size, None),
    bn_mode="eval",
    class_outputs=True,
    description="VKDNW: entropy of the Fisher spectrum's quantiles over one scalar per parameter tensor, "
                "ranked after the tensor count (Gaussian batch; ensemble vkdnw_agg)",
)
