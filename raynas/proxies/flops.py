"""FLOPs: multiply-accumulates of one forward pass on a single image at the dataset's
resolution, counted by ``torch.utils.flop_counter`` (which reports 2 FLOPs per MAC; we
store MACs, the unit NB201/NB101 tables call FLOPs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from raynas.probes import ProbeBatch
from raynas.proxies.base import ProbeSpec, ProxyContext, ProxyDef


@dataclass(frozen=True)
class FlopsOptions:
    resolution: int | None = None  # None: the dataset's native size


def count_macs(model: nn.Module, resolution: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> int:
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution, device=device, dtype=dtype))
    model.train(was_training)
    return counter.get_total_flops() // 2


def compute(model: nn.Module, batch: ProbeBatch, options: FlopsOptions, ctx: ProxyContext) -> dict[str, float]:
    return {"flops": float(count_macs(model, batch.inputs.shape[-1], ctx.device, batch.inputs.dtype))}


PROXY = ProxyDef(
    name="flops",
    compute=compute,
    options_cls=FlopsOptions,
    components=("flops",),
    headline="flops",
    probe=lambda o: ProbeSpec("gaussian", 2, o.resolution),
    structural=True,
    description="multiply-accumulates of one forward pass (batch 1)",
)
