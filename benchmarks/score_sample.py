"""Score a fixed random sample of cells without Ray, resumably (one Parquet part per chunk),
for the correlation studies of docs/results.md.

    python benchmarks/score_sample.py --out runs/s1000_cifar10 --dataset cifar10 \
        --n 1000 --sample-seed 2026 --proxies "intrain;gradalign;params"
    python benchmarks/score_sample.py --space nb101 --out runs/nb101_s300 --n 300 --proxies "intrain;params"

NB201 samples are drawn from all 15,625 cells; NB101 samples from the 5,000 cells that have
accuracies in ``shared/data/nb101/accuracy_sample5000.parquet``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raynas.scoring import CellScorer


def sample_cells(space: str, n: int, sample_seed: int) -> list[int]:
    if space == "nb101":
        from raynas.spaces.nb101_truth import load_nb101_ground_truth

        pool = np.asarray(load_nb101_ground_truth().column("index"))
    else:
        pool = np.arange(15_625)
    return sorted(int(i) for i in np.random.default_rng(sample_seed).choice(pool, n, replace=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--space", default="nb201", choices=["nb201", "nb101"])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--first", type=int, default=None, help="score only the first K cells of the sample")
    ap.add_argument("--sample-seed", type=int, default=2026)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proxies", default="intrain;gradalign;params")
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--memory", action="store_true", help="measure CPU peak memory (~20%% slower)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cells = sample_cells(args.space, args.n, args.sample_seed)[: args.first]
    args.out.mkdir(parents=True, exist_ok=True)
    done = set()
    for part in args.out.glob("part-*.parquet"):  # resume
        done.update(pq.read_table(part, columns=["index"]).column("index").to_pylist())
    todo = [c for c in cells if c not in done]
    scorer = CellScorer(args.space, args.proxies, dataset=args.dataset, seed=args.seed, measure_memory=args.memory)
    print(f"{len(done)} done, {len(todo)} to score", flush=True)
    start = time.time()
    for k in range(0, len(todo), args.chunk):
        rows = list(scorer.iter_scores(todo[k : k + args.chunk]))
        table = pa.Table.from_pylist(rows)
        tmp = args.out / f".part-{todo[k]:05d}.tmp"
        pq.write_table(table, tmp)
        tmp.rename(args.out / f"part-{todo[k]:05d}.parquet")  # atomic: a part is whole or absent
        n = k + len(rows)
        print(f"{n}/{len(todo)} cells, {n / (time.time() - start):.3f} cells/s", flush=True)


if __name__ == "__main__":
    main()
