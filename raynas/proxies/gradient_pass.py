"""One cross-entropy forward/backward shared by the gradient baselines.

grad_norm, snip, grasp (its first pass), fisher and jacob_cov all differentiate the same
train-mode forward on the same labelled batch at the same initial weights, so a cell pays
for that forward once. The first proxy that asks computes every product named in
``ctx.shared_needs``; later ones read the cache in ``ctx.shared``. The products are exactly
what each proxy would compute alone (tests check this), so sharing never changes a score.

Layers are every ``nn.Conv2d`` and ``nn.Linear`` (weights only), as in zero-cost-nas.
A layer the loss does not reach (an op feeding a dead-end node) gets zero gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProxyContext, forward_hooks, forward_logits
from raynas.proxies.layers import weight_layers, with_zeros_for_unused

WEIGHT_GRADS, FISHER, INPUT_JACOBIAN = "weight_grads", "fisher", "input_jacobian"
PRODUCTS = frozenset({WEIGHT_GRADS, FISHER, INPUT_JACOBIAN})


@dataclass(frozen=True)
class GradientPass:
    """Products of one CE forward/backward; lists follow :func:`weight_layers` order."""

    weights: list[torch.Tensor]  # detached weights, as they were for the pass
    weight_grads: list[torch.Tensor] | None  # ∂CE/∂W
    fisher: list[torch.Tensor] | None  # per output channel: ½ mean_n (Σ_hw a ⊙ ∂CE/∂a)²
    input_jacobian: torch.Tensor | None  # (N, C·H·W): ∂(Σ_c logits_c)/∂x per sample


def channel_fisher(activation: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """½ mean_n (Σ_spatial a·g)² per channel (zero-cost-nas' fisher, before broadcasting)."""
    if grad is None:
        return activation.new_zeros(activation.shape[1])
    per_sample = activation * grad.detach()
    if per_sample.dim() > 2:
        per_sample = per_sample.sum(dim=tuple(range(2, per_sample.dim())))
    return per_sample.pow(2).mean(0).mul(0.5)


def gradient_pass(model: nn.Module, batch: ProbeBatch, ctx: ProxyContext, needs: frozenset[str]) -> GradientPass:
    """The shared pass for ``batch``, computed on first use with every product any proxy of
    this cell needs (``ctx.shared_needs``) plus ``needs``."""
    key = ("gradient_pass", id(batch))
    cached = ctx.shared.get(key)
    if cached is not None and all(getattr(cached[1], n) is not None for n in needs):
        return cached[1]
    wanted = frozenset(needs) | (ctx.shared_needs & PRODUCTS)
    result = _compute(model, batch, wanted)
    ctx.shared[key] = (batch, result)  # holding the batch keeps id(batch) from being reused
    return result


def _compute(model: nn.Module, batch: ProbeBatch, wanted: frozenset[str]) -> GradientPass:
    layers = weight_layers(model)
    activations: dict[nn.Module, torch.Tensor] = {}

    def keep(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        activations[module] = output

    model.train()
    model.zero_grad(set_to_none=True)
    inputs = batch.inputs.clone().requires_grad_(INPUT_JACOBIAN in wanted)
    with forward_hooks(layers if FISHER in wanted else [], keep):
        logits = forward_logits(model, inputs)
    loss = F.cross_entropy(logits, batch.labels)
    weights = [layer.weight for layer in layers]
    hooked = [layer for layer in layers if layer in activations]
    targets = (weights if WEIGHT_GRADS in wanted else []) + [activations[layer] for layer in hooked]
    grads = torch.autograd.grad(loss, targets, retain_graph=INPUT_JACOBIAN in wanted, allow_unused=True) if targets else ()

    weight_grads = fisher = jacobian = None
    if WEIGHT_GRADS in wanted:
        weight_grads = with_zeros_for_unused(grads, weights)
        grads = grads[len(weights):]
    if FISHER in wanted:
        act_grads = dict(zip(hooked, grads))
        fisher = [
            channel_fisher(activations[layer].detach(), act_grads[layer])
            if layer in act_grads else layer.weight.new_zeros(layer.weight.shape[0])  # layer never ran
            for layer in layers
        ]
    if INPUT_JACOBIAN in wanted:
        (jac,) = torch.autograd.grad(logits.sum(), inputs)
        jacobian = jac.detach().reshape(len(inputs), -1)
    return GradientPass([w.detach() for w in weights], weight_grads, fisher, jacobian)
