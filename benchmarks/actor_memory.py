"""Does a scorer leak memory over many cells? RSS of one scoring process (what a Ray actor
runs) after 100 cells and after N cells.

    python benchmarks/actor_memory.py --cells 2000 --proxies "intrain:batch_size=16;gradalign:batch_size=16"
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import psutil
import torch

from raynas.scoring import CellScorer


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--proxies", default="intrain:batch_size=16;gradalign:batch_size=16")
    args = ap.parse_args()
    torch.set_num_threads(1)
    scorer = CellScorer("nb201", args.proxies, measure_memory=False)
    order = np.random.default_rng(0).permutation(15_625)[: args.cells]
    start, marks = time.time(), {}
    for n, cell in enumerate(order, start=1):
        scorer.score(int(cell))
        if n in (100, 500, 1000, 1500) or n == args.cells:
            marks[n] = rss_mb()
            print(f"after {n:5d} cells: RSS {marks[n]:8.1f} MiB ({time.time() - start:.0f} s)", flush=True)
    print(f"growth from 100 to {args.cells} cells: {marks[args.cells] - marks[100]:+.1f} MiB")


if __name__ == "__main__":
    main()
