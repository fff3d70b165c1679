"""A proxy of your own, in the shape raynas expects: how strongly the untrained network's
logits respond to its input (log mean norm of d(sum of logits)/dx on a Gaussian batch).

    raynas score nb201 --proxies "input_sensitivity.PROXY:batch_size=8" --out runs/mine
"""

from dataclasses import dataclass

import torch

from raynas.proxies.base import ProbeSpec, ProxyDef, forward_logits


@dataclass(frozen=True)
class Options:
    batch_size: int = 16


def compute(model, batch, options, ctx):
    inputs = batch.inputs.clone().requires_grad_(True)  # the caller's batch stays untouched
    logits = forward_logits(model, inputs)  # raises DegenerateNetwork when the input is ignored
    (grad,) = torch.autograd.grad(logits.sum(), inputs)
    norms = grad.flatten(1).norm(dim=1)
    return {"input_sensitivity": float(norms.mean().log()), "batch": float(len(norms))}


PROXY = ProxyDef(
    name="input_sensitivity",
    compute=compute,
    options_cls=Options,
    components=("input_sensitivity", "batch"),
    diagnostics=("batch",),  # describes the computation; not a score
    headline="input_sensitivity",
    probe=lambda o: ProbeSpec("gaussian", o.batch_size),
    description="log mean norm of the input gradient of the summed logits",
)
