"""How much of InTrain's o is rounding: the same cells' o in float32 and float64 (CPU).

o sums min(1, std(g)/max|g|) over gradient tensors. Some tensors' exact gradient is 0 (a BN
bias in the last cell whose per-channel shift reaches the final train-mode BN unchanged), so
their ratio is a ratio of rounding noise, and it moves with the arithmetic: between float32
and float64 here, and between a CPU and a GPU (docs/history.md, "On an NVIDIA H100").

    python benchmarks/intrain_rounding.py --cells 0,1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from raynas.probes import gaussian_batch
from raynas.proxies.base import forward_logits
from raynas.proxies.intrain import InTrainOptions, gradient_resilience
from raynas.seeding import derive_seed, seeded
from raynas.spaces import get_space


def gradients(space, cell: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """Each multi-element parameter's gradient after InTrain's pass (CIFAR-10 defaults)."""
    options = InTrainOptions()
    batch = gaussian_batch(options.batch_size, options.resolution, 10, seed)
    with seeded(derive_seed(seed, space.name, cell)):
        model = space.build(cell, 10)
    model = model.to(dtype).train()
    F.cross_entropy(forward_logits(model, batch.inputs.to(dtype)), batch.labels).backward()
    return {name: p.grad for name, p in model.named_parameters() if p.grad is not None and p.numel() > 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="0,1")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    for cell in (int(c) for c in args.cells.split(",")):
        single, double = gradients(space, cell, torch.float32), gradients(space, cell, torch.float64)
        r32, r64 = gradient_resilience(list(single.values())), gradient_resilience(list(double.values()))
        worst = int((r32 - r64).abs().argmax())
        name = list(single)[worst]
        largest = max(float(g.abs().max()) for g in single.values())
        print(f"cell {cell}: o float32 {float(r32.sum()):.3f}, float64 {float(r64.sum()):.3f}; largest change "
              f"{name}: ratio {float(r32[worst]):.3f} → {float(r64[worst]):.3f}, its max |gradient| "
              f"{float(single[name].abs().max()):.1e} against the largest {largest:.2g}")


if __name__ == "__main__":
    main()
