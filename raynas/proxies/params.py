"""#params: trainable parameters of the built network (the benchmark's own count)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef


@dataclass(frozen=True)
class ParamsOptions:
    pass


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def compute(model: nn.Module, batch: ProbeBatch | None, options: ParamsOptions, ctx: ProxyContext) -> dict[str, float]:
    return {"params": float(count_parameters(model))}


PROXY = ProxyDef(
    name="params",
    compute=compute,
    options_cls=ParamsOptions,
    components=("params",),
    headline="params",
    probe=lambda o: ProbeSpec("none"),
    structural=True,
    description="number of trainable parameters",
)
