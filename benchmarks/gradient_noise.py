"""Where rounding noise sits among gradients: the data behind the proxies' noise thresholds.

For every parameter tensor of each cell, q = max|g_t| / max over the network's tensors of
max|g|, twice:

- InTrain's pass (Gaussian batch of 64, random labels, train-mode BN; summed gradient);
- GradAlign's per-sample gradients (the real CIFAR-10 batch of 128, per-sample BN), per
  sample: q = max|g_{n,t}| / max_t max|g_{n,t}|, each sample against its own largest.

Each q is computed in the default float32 arithmetic and in float64 (the same weights and
inputs). A tensor whose float64 q is below 1e-12 has an exact gradient of zero (float64
rounding is ~1e-16): its float32 value is rounding noise. The histogram of log10 q shows
the noise cluster, the smallest real gradients, and the gap a threshold goes in.

    python benchmarks/gradient_noise.py --nb201 100 --nb101 20 --json noise.json
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from raynas.probes import ProbeBatch, gaussian_batch, real_batch
from raynas.proxies import gradalign, persample
from raynas.proxies.base import DegenerateNetwork, forward_logits
from raynas.seeding import derive_seed, seeded
from raynas.spaces import get_space

EXACT_ZERO = 1e-12  # float64 q below this: the exact gradient is zero


def build(space, cell: int, dtype: torch.dtype) -> torch.nn.Module:
    with seeded(derive_seed(0, space.name, cell)):
        model = space.build(cell, 10)
    return model.to(dtype).train()


def summed_ratios(space, cell: int, dtype: torch.dtype) -> list[float]:
    """q per multi-element tensor after InTrain's forward/backward."""
    batch = gaussian_batch(64, 32, 10, 0)
    model = build(space, cell, dtype)
    F.cross_entropy(forward_logits(model, batch.inputs.to(dtype)), batch.labels).backward()
    peaks = [float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None and p.numel() > 1]
    top = max(peaks)
    return [p / top for p in peaks]


def per_sample_ratios(space, cell: int, dtype: torch.dtype, batch) -> np.ndarray:
    """q per (sample, tensor) of GradAlign's per-sample gradients."""
    model = build(space, cell, dtype)
    inputs = batch.inputs.to(dtype)
    matrix = persample.per_sample_gradients(model, inputs, batch.labels, "per_sample")
    if matrix is None:  # a layer without a closed form: vmap, as GradAlign does then
        grads = gradalign.per_sample_gradients(model, ProbeBatch(inputs, batch.labels), "per_sample")
        matrix = torch.cat([g.reshape(len(batch), -1) for g in grads.values()], 1)
    sizes = [p.numel() for p in model.parameters()]
    peaks = torch.stack([block.abs().amax(1) for block in matrix.split(sizes, dim=1)], dim=1).double()
    return (peaks / peaks.amax(1, keepdim=True)).numpy()


def histogram(q32: np.ndarray, q64: np.ndarray) -> dict:
    """Counts per decade of log10 q (float32), split by whether the exact gradient is zero."""
    noise, real = q32[q64 < EXACT_ZERO], q32[(q64 >= EXACT_ZERO)]
    bins = np.arange(-20, 1)
    decade = lambda q: np.histogram(np.log10(np.maximum(q, 1e-30)), bins)[0].tolist()  # noqa: E731
    return {
        "decades": bins[:-1].tolist(),
        "noise": decade(noise),
        "real": decade(real[real > 0]),
        "exactly_zero_in_float32": int((q32 == 0).sum()),
        "largest_noise_q": float(noise.max()) if len(noise) else None,
        "smallest_real_q": float(real[real > 0].min()) if (real > 0).any() else None,
        "tensors": int(len(q32)),
    }


def cells_of(space, n: int) -> list[int]:
    step = len(space) // n
    return [i * step for i in range(n) if not space.is_degenerate(i * step)]


def measure(space_name: str, n: int, per_sample_cells: int) -> dict:
    space = get_space(space_name)
    cells = cells_of(space, n)
    q32, q64 = [], []
    for cell in cells:
        try:
            q32 += summed_ratios(space, cell, torch.float32)
            q64 += summed_ratios(space, cell, torch.float64)
        except DegenerateNetwork:
            continue
    result = {"cells": cells, "intrain": histogram(np.array(q32), np.array(q64))}
    if per_sample_cells:
        batch = real_batch("cifar10", 128, 0)
        s32 = [per_sample_ratios(space, c, torch.float32, batch).ravel() for c in cells[:per_sample_cells]]
        s64 = [per_sample_ratios(space, c, torch.float64, batch).ravel() for c in cells[:per_sample_cells]]
        result["gradalign"] = histogram(np.concatenate(s32), np.concatenate(s64))
    return result


def show(name: str, h: dict) -> None:
    print(f"{name}: {h['tensors']} tensors; largest noise q {h['largest_noise_q']}, smallest real q "
          f"{h['smallest_real_q']}, exactly 0 in float32: {h['exactly_zero_in_float32']}")
    print("  log10 q   noise   real")
    for d, a, b in zip(h["decades"], h["noise"], h["real"]):
        if a or b:
            print(f"  {d:5d}   {a:6d} {b:6d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nb201", type=int, default=100, help="NB201 cells (evenly spaced indices)")
    ap.add_argument("--nb101", type=int, default=20, help="NB101 cells (evenly spaced indices)")
    ap.add_argument("--per-sample", type=int, default=20, help="of those, NB201 cells for GradAlign's per-sample q")
    ap.add_argument("--json", help="write the histograms here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {}
    if args.nb201:
        out["nb201"] = measure("nb201", args.nb201, args.per_sample)
    if args.nb101:
        out["nb101"] = measure("nb101", args.nb101, 0)
    for space, result in out.items():
        for proxy in ("intrain", "gradalign"):
            if proxy in result:
                show(f"{space} {proxy}", result[proxy])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)


if __name__ == "__main__":
    main()
