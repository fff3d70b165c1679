"""Where two convolution kernels part ways, layer by layer: forward activations, backward
output gradients and ReLU decisions of one cell, oneDNN against the native kernel (both
float32), each also against float64.

InTrain's forward/backward (Gaussian batch of 64, random labels, train-mode BN) with the
cell's own weights, three times: oneDNN float32, ``torch.backends.mkldnn.enabled = False``
float32, and float64. For every leaf module, in forward order for activations and in
backward order for gradients: max |a − b| / max |float64| between the kernels (``kernels``)
and of oneDNN against float64 (``rounding``). For every ReLU: how many inputs lie on the
other side of 0 under the other kernel (``flips``).

    python benchmarks/kernel_trace.py --space nb201 --cell 9000
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from raynas.probes import gaussian_batch
from raynas.seeding import derive_seed, seeded
from raynas.spaces import get_space


def trace(space, cell: int, dtype: torch.dtype, mkldnn: bool) -> dict:
    """Leaf modules' outputs, their gradients (in backward order) and ReLU inputs."""
    batch = gaussian_batch(64, 32, 10, 0)
    with seeded(derive_seed(0, space.name, cell)):
        model = space.build(cell, 10)
    model = model.to(dtype).train()
    outputs, grads, order, relu_inputs = {}, {}, [], {}

    def keep_grad(name: str):
        def hook(g: torch.Tensor) -> None:
            order.append(name)
            grads[name] = g.detach().clone()
        return hook

    def forward_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            outputs[name] = output.detach().clone()
            if isinstance(module, nn.ReLU):
                relu_inputs[name] = inputs[0].detach().clone()
            if output.requires_grad:
                output.register_hook(keep_grad(name))
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(forward_hook(n)) for n, m in leaves]
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        F.cross_entropy(model(batch.inputs.to(dtype)), batch.labels).backward()
    for h in handles:
        h.remove()
    return {"outputs": outputs, "grads": grads, "order": order, "relu_inputs": relu_inputs}


def relative(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    top = float(scale.abs().max())
    return float((a.double() - b.double()).abs().max()) / top if top else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--cell", type=int, default=9000)
    ap.add_argument("--top", type=int, default=12, help="rows of the backward table (largest first jumps)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # said on every flags() call
    torch.set_num_threads(1)
    space = get_space(args.space)
    one = trace(space, args.cell, torch.float32, True)
    native = trace(space, args.cell, torch.float32, False)
    exact = trace(space, args.cell, torch.float64, True)
    print(f"{args.space} cell {args.cell}: {space.arch_str(args.cell)}")

    forward = [(n, relative(one["outputs"][n], native["outputs"][n], exact["outputs"][n]),
                relative(one["outputs"][n], exact["outputs"][n], exact["outputs"][n])) for n in one["outputs"]]
    print(f"forward: largest activation difference between kernels {max(f[1] for f in forward):.1e}, "
          f"against float64 {max(f[2] for f in forward):.1e}")

    flips = {n: int(((x > 0) != (native["relu_inputs"][n] > 0)).sum()) for n, x in one["relu_inputs"].items()}
    total = sum(x.numel() for x in one["relu_inputs"].values())
    print(f"ReLU inputs on the other side of 0 between kernels: {sum(flips.values())} of {total:,} "
          f"(float64 vs oneDNN: {sum(int(((x > 0) != (one['relu_inputs'][n].double() > 0)).sum()) for n, x in exact['relu_inputs'].items())})")
    for n, k in flips.items():
        if k:
            x = exact["relu_inputs"][n]
            print(f"  {n}: {k} flipped; |input| there {float(x[(one['relu_inputs'][n] > 0) != (native['relu_inputs'][n] > 0)].abs().max()):.1e} "
                  f"against the layer's {float(x.abs().max()):.1e}")

    print("backward (output gradients, in backward order): module, kernels, rounding")
    shown, previous = 0, 0.0
    for n in exact["order"]:
        if n not in one["grads"] or n not in native["grads"]:
            continue
        k = relative(one["grads"][n], native["grads"][n], exact["grads"][n])
        r = relative(one["grads"][n], exact["grads"][n], exact["grads"][n])
        if shown < args.top and (k > 10 * previous or shown < 3):
            print(f"  {n:40s} {k:9.1e} {r:9.1e}")
            shown += 1
        previous = max(previous, k)


if __name__ == "__main__":
    main()
