"""ReLU activation patterns, as TE-NAS (linear regions) and SWAP read them: the sign of
every ``nn.ReLU`` output whose input is 4-D (the official hooks' condition), per sample."""

from __future__ import annotations

import torch
from torch import nn

from raynas.proxies.base import forward_hooks


def relu_output_signs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor | None:
    """(samples, neurons) bool: output > 0 of every such ReLU, concatenated in forward order;
    None when the network has none. One forward under ``no_grad``."""
    signs: list[torch.Tensor] = []

    def keep(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if args[0].dim() == 4:
            signs.append(output.detach().reshape(len(inputs), -1) > 0)

    with torch.no_grad(), forward_hooks((m for m in model.modules() if isinstance(m, nn.ReLU)), keep):
        model(inputs)
    return torch.cat(signs, dim=1) if signs else None
