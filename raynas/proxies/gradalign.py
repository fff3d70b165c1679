"""GradAlign: agreement of per-sample gradient signs within each class, at initialisation.

Per class c (N_c ≥ 2): s_i = sign(g_i), m = sign(Σ_i g_i);
GradAlign-I  = mean_i s_i · m          (also divided by the parameter count P);
GradAlign-II = log det(S Sᵀ)           (−inf when the sign Gram matrix is singular).
Both averaged over classes. Per-sample gradients come from ``torch.func`` (vmap ∘ grad).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef

BN_MODES = ("per_sample", "eval")


@dataclass(frozen=True)
class GradAlignOptions:
    batch_size: int = 128
    # OPEN: per_sample = train-mode BN on each sample alone (as a batch-1 loop would do);
    # eval = BN with its initial running statistics. Measured in docs/results.md.
    bn: str = "per_sample"
    chunk_size: int | None = None  # vmap chunking, to bound memory on big networks
    # One class at a time: peak memory ~ (class size × parameters) instead of (N × P), same
    # scores (per-sample gradients do not depend on the other samples in either BN mode).
    by_class: bool = True


def per_sample_gradients(model: nn.Module, batch: ProbeBatch, bn: str, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """{parameter name: (N, *shape)} gradients of each sample's cross-entropy loss."""
    if bn not in BN_MODES:
        raise ValueError(f"gradalign bn must be one of {BN_MODES}, got {bn!r}")
    if bn == "per_sample":
        # Running statistics cannot be updated inside vmap; drop them on a private copy so
        # the caller's network is untouched.
        net = replace_all_batch_norm_modules_(copy.deepcopy(model)).train()
    else:
        net = model.eval()
    params = {k: p.detach() for k, p in net.named_parameters()}
    buffers = {k: b.detach() for k, b in net.named_buffers()}

    def sample_loss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(net, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(
        params, batch.inputs, batch.labels
    )


def class_groups(labels: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of each class with at least two samples (GradAlign needs pairs)."""
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    groups = [torch.nonzero(labels == c).flatten() for c in classes[counts >= 2]]
    if not groups:
        raise ValueError("GradAlign needs at least one class with two or more samples in the batch")
    return groups


def per_class_alignment(gradients: Iterable[torch.Tensor], groups: list[torch.Tensor], n: int) -> tuple[list[float], list[float], int]:
    """(GA-I per class, GA-II per class, parameter count) from per-sample gradient tensors
    (each (n, ...)) and the row indices of each class.

    Works tensor by tensor (the sums over parameters split exactly), padding classes into one
    batched matmul, so the (N, P) matrix is never materialised.
    """
    width = max(len(g) for g in groups)
    # (K, width) row indices into the gradients, padded with n → an appended zero row.
    index = torch.full((len(groups), width), n, dtype=torch.long)
    for k, g in enumerate(groups):
        index[k, : len(g)] = g
    sizes = torch.tensor([len(g) for g in groups], dtype=torch.float64)

    align = torch.zeros(len(groups), width, dtype=torch.float64)
    gram = torch.zeros(len(groups), width, width, dtype=torch.float64)
    n_params = 0
    for g in gradients:
        flat = g.reshape(n, -1)
        n_params += flat.shape[1]
        padded = torch.cat([flat, flat.new_zeros(1, flat.shape[1])])[index.to(flat.device)]  # (K, W, p)
        signs = torch.sign(padded)
        mean_sign = torch.sign(padded.sum(1, keepdim=True))  # (K, 1, p)
        align += (signs * mean_sign).sum(-1).double().cpu()
        gram += torch.bmm(signs, signs.transpose(1, 2)).double().cpu()

    per_class_2 = [sign_gram_logdet(gram[k, :size, :size]) for k, size in enumerate(sizes.long().tolist())]
    return (align.sum(1) / sizes).tolist(), per_class_2, n_params


def summarise(per_class_1: list[float], per_class_2: list[float], n_params: int) -> dict[str, float]:
    """The GradAlign components: per-class scores averaged over classes."""
    ga1 = float(torch.tensor(per_class_1, dtype=torch.float64).mean())
    return {
        "gradalign_1": ga1,
        "gradalign_1_per_param": ga1 / n_params,
        "gradalign_2": sum(per_class_2) / len(per_class_2),
        "gradalign_classes": float(len(per_class_1)),
    }


def alignment_scores(gradients: Iterable[torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """GradAlign-I, -I/P and -II from per-sample gradient tensors (each (N, ...))."""
    return summarise(*per_class_alignment(gradients, class_groups(labels), len(labels)))


def sign_gram_logdet(gram: torch.Tensor) -> float:
    """log det of an integer Gram matrix of sign vectors; −inf when singular.

    An integer matrix that is nonsingular has |det| ≥ 1, so a computed log det below
    log(1/2) can only be round-off on a singular matrix.
    """
    sign, logdet = torch.linalg.slogdet(gram)
    if float(sign) <= 0 or float(logdet) < math.log(0.5):
        return -math.inf
    return float(logdet)


def compute(model: nn.Module, batch: ProbeBatch, options: GradAlignOptions, ctx: ProxyContext) -> dict[str, float]:
    if not options.by_class:
        grads = per_sample_gradients(model, batch, options.bn, options.chunk_size)
        return alignment_scores(grads.values(), batch.labels)
    per_class_1: list[float] = []
    per_class_2: list[float] = []
    for rows in class_groups(batch.labels):
        rows = rows.to(batch.inputs.device)
        grads = per_sample_gradients(model, ProbeBatch(batch.inputs[rows], batch.labels[rows]), options.bn, options.chunk_size)
        one, two, n_params = per_class_alignment(grads.values(), [torch.arange(len(rows))], len(rows))
        per_class_1 += one
        per_class_2 += two
        del grads
    return summarise(per_class_1, per_class_2, n_params)


PROXY = ProxyDef(
    name="gradalign",
    compute=compute,
    options_cls=GradAlignOptions,
    components=("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes"),
    headline="gradalign_1",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    higher_is_better=True,
    per_sample_grads=True,
    bn_mode="per_sample",
    description="per-sample gradient sign alignment within classes (real labelled batch)",
)
