"""The layers the gradient-based proxies (grad_norm, snip, grasp, fisher, synflow, zico) sum
over, and their gradients with zeros where the loss does not reach."""

from __future__ import annotations

import torch
from torch import nn


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The layers zero-cost proxies sum over: every Conv2d and Linear, in module order."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def with_zeros_for_unused(grads: tuple[torch.Tensor | None, ...], weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Detached gradients, zeros for weights the loss does not reach (``allow_unused``)."""
    return [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, grads)]
