"""NB201's 3×3 average pool on the CPU: raynas' separable sums against torch's kernel.

    python benchmarks/avg_pool_cpu.py --cells 8 --proxies "intrain;az_nas" --json /tmp/avg_pool.json

Per-cell seconds of each proxy with ``raynas.spaces.nb201_network.avg_pool_3x3`` as shipped
and with torch's ``F.avg_pool2d`` in its place, the two alternating cell by cell in one
process on one thread (so that a busy machine slows both alike), on NB201 cells that have
at least two pool edges; and each component's largest relative difference between the two
(the pool's float32 rounding, ~1e-7, as another kernel moves it). Then the op alone,
forward and backward, on NB201's three feature-map shapes.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import raynas.spaces.nb201_network as network
from raynas.scoring import CellScorer
from raynas.spaces import get_space
from raynas.spaces.nb201 import parse_arch

SHIPPED = network.avg_pool_3x3


def torch_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def pool_cells(n: int, seed: int = 5) -> list[int]:
    """``n`` non-degenerate cells with two or more avg_pool_3x3 edges, a fixed draw."""
    space = get_space("nb201")
    drawn = np.random.default_rng(seed).permutation(len(space))
    pick = [int(c) for c in drawn if not space.is_degenerate(int(c))
            and parse_arch(space.arch_str(int(c))).count("avg_pool_3x3") >= 2]
    return pick[:n]


def score_with(pool, scorer: CellScorer, cell: int) -> tuple[dict, float]:
    network.avg_pool_3x3 = pool
    try:
        start = time.perf_counter()
        row = scorer.score(cell)
        return row, time.perf_counter() - start
    finally:
        network.avg_pool_3x3 = SHIPPED


def op_alone(repeats: int = 20) -> dict[str, dict[str, float]]:
    out = {}
    for shape in ((64, 16, 32, 32), (64, 32, 16, 16), (64, 64, 8, 8)):
        x = torch.randn(shape, requires_grad=True)
        g = torch.randn(shape)
        times = {}
        for name, pool in (("torch", torch_pool), ("raynas", SHIPPED)):
            for _ in range(3):
                pool(x).backward(g)
            start = time.perf_counter()
            for _ in range(repeats):
                pool(x).backward(g)
            times[name] = (time.perf_counter() - start) / repeats * 1e3
        out["x".join(map(str, shape))] = {"torch_ms": times["torch"], "raynas_ms": times["raynas"],
                                          "ratio": times["torch"] / times["raynas"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--proxies", default="intrain;az_nas")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cells = pool_cells(args.cells)
    report = {"cells": cells, "proxies": {}}
    for proxy in args.proxies.split(";"):
        scorer = CellScorer("nb201", proxy, dataset=args.dataset, threads=1, measure_memory=False)
        scorer.score(cells[0])  # warm-up, not counted
        seconds = {"torch": [], "raynas": []}
        worst: dict[str, float] = {}
        for cell in cells:
            a, ta = score_with(torch_pool, scorer, cell)
            b, tb = score_with(SHIPPED, scorer, cell)
            seconds["torch"].append(ta)
            seconds["raynas"].append(tb)
            for key, value in a.items():
                if key.endswith("_s") or not isinstance(value, float) or not math.isfinite(value):
                    continue
                diff = abs(b[key] - value) / max(abs(value), 1e-30)
                worst[key] = max(worst.get(key, 0.0), diff)
        t, r = sum(seconds["torch"]) / len(cells), sum(seconds["raynas"]) / len(cells)
        report["proxies"][proxy] = {"torch_s_per_cell": t, "raynas_s_per_cell": r, "ratio": t / r,
                                    "largest_relative_difference": worst}
        print(f"{proxy}: {t:.3f} s/cell with torch's pool, {r:.3f} with raynas' ({t / r:.2f}x); "
              + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()), flush=True)
    report["op_alone"] = op_alone()
    for shape, p in report["op_alone"].items():
        print(f"pool {shape}, forward + backward: torch {p['torch_ms']:.2f} ms, raynas {p['raynas_ms']:.2f} ms "
              f"({p['ratio']:.2f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
