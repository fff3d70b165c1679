"""naswot (NASWOT v2, ICML'21): binary codes c = 1[input of ReLU > 0] of each sample over
every ReLU that the output depends on; K = Σ_ReLU c cᵀ + (1−c)(1−c)ᵀ (N×N, the number of
units on which two samples agree); score = log|det K|. One train-mode forward on a real
batch. NASWOT only counts ReLUs its backward pass visits; raynas finds the same set by
walking the autograd graph from the logits, with no second pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef, forward_hooks, forward_logits


RELU_SETS = ("reachable", "all")


@dataclass(frozen=True)
class NaswotOptions:
    batch_size: int = 128  # NASWOT's default
    # reachable: ReLUs the output depends on (NASWOT's own code); all: every nn.ReLU that
    # ran, dead ends included (NASLib's nwot).
    relus: str = "reachable"

    def __post_init__(self) -> None:
        if self.relus not in RELU_SETS:
            raise ValueError(f"naswot relus must be one of {RELU_SETS}, got {self.relus!r}")


def reachable_nodes(root: torch.Tensor) -> set:
    """Every autograd node the backward of ``root`` would visit."""
    seen: set = set()
    stack = [root.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(fn for fn, _ in node.next_functions)
    return seen


def code_kernel(codes: list[torch.Tensor]) -> torch.Tensor:
    """K_ij = number of units where samples i and j have the same code (float64).

    With s = 2c − 1 ∈ {±1}, agreements = (units + s_i · s_j) / 2: one matmul per ReLU
    instead of the two of c cᵀ + (1−c)(1−c)ᵀ. Per-layer values are exact in float32.
    """
    n = codes[0].shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=codes[0].device)
    for c in codes:
        s = c.reshape(n, -1).float().mul_(2).sub_(1)
        kernel += ((s @ s.T + s.shape[1]) / 2).double()
    return kernel


def compute(model: nn.Module, batch: ProbeBatch, options: NaswotOptions, ctx: ProxyContext) -> dict[str, float]:
    records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        records.append(((inputs[0].detach() > 0), output))

    model.train()
    with forward_hooks((m for m in model.modules() if isinstance(m, nn.ReLU)), keep):
        logits = forward_logits(model, batch.inputs)
    visited = reachable_nodes(logits) if options.relus == "reachable" else None
    codes = [code for code, out in records if visited is None or out.grad_fn is None or out.grad_fn in visited]
    if not codes:
        raise ValueError("naswot: the network has no ReLU on a path to its output")
    _, logdet = torch.linalg.slogdet(code_kernel(codes))
    return {"naswot": float(logdet)}


PROXY = ProxyDef(
    name="naswot",
    compute=compute,
    options_cls=NaswotOptions,
    components=("naswot",),
    headline="naswot",
    probe=lambda o: ProbeSpec("real", o.batch_size, None),
    description="log-determinant of the ReLU activation-code kernel (real batch)",
)
