"""Score a fixed random sample of cells without Ray, resumably (one Parquet part per chunk),
for the correlation studies of docs/results.md. Real-data proxies draw from the probe file
``raynas data status`` names: the figures of docs/results.md used the project's files
(``RAYNAS_DATA_DIR=../shared/data``), as does ``--pool naslib`` (peers' scores).

    python benchmarks/score_sample.py --out runs/s1000_cifar10 --dataset cifar10 \
        --n 1000 --sample-seed 2026 --proxies "intrain;gradalign;params"
    python benchmarks/score_sample.py --space nb101 --out runs/nb101_s300 --n 300 --proxies "intrain;params"

NB201 samples are drawn from all 15,625 cells; NB101 samples from the 5,000 cells that have
accuracies in the NB101 accuracy table (``raynas data status``). ``--pool naslib`` draws
from the cells NASLib published zero-cost scores for instead (for benchmarks/peer_agreement.py):

    python benchmarks/score_sample.py --pool naslib --out runs/naslib150_c10 --n 150 \
        --proxies "grad_norm;snip;grasp;fisher;jacob_cov;synflow;naswot;zen;zico;params;flops"
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raynas import __version__
from raynas.results import check_or_write_run_config
from raynas.rows import row_schema, rows_to_table
from raynas.scoring import CellScorer


def cell_pool(space: str, pool: str) -> np.ndarray:
    """Cell indices a sample is drawn from."""
    from raynas.datafiles import data_file

    if space == "nb101":
        if pool == "naslib":
            from raynas.spaces import get_space

            hashes = pq.read_table(data_file("nb101/peer_scores_naslib_subset500.parquet"), columns=["hash"])
            return np.unique([get_space("nb101").index_of(h) for h in hashes.column("hash").to_pylist()])
        from raynas.spaces.nb101 import load_ground_truth_table

        return np.asarray(load_ground_truth_table().column("index"))
    if space == "nb_macro":
        return np.arange(6_561)
    if pool == "naslib":
        table = pq.read_table(data_file("nb201/peer_scores_naslib_subset.parquet"), columns=["dataset", "index"])
        return np.unique(np.asarray(table.column("index")))
    return np.arange(15_625)


def sample_cells(space: str, n: int, sample_seed: int, pool: str = "all", subsample: int | None = None) -> list[int]:
    """``n`` cells drawn with ``sample_seed``, sorted; ``subsample`` keeps the first K in
    draw order (a random subset of the same sample)."""
    drawn = np.random.default_rng(sample_seed).choice(cell_pool(space, pool), n, replace=False)
    return sorted(int(i) for i in drawn[:subsample])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--space", default="nb201", choices=["nb201", "nb101", "nb_macro"])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--first", type=int, default=None, help="score only the K lowest-index cells of the sample")
    ap.add_argument("--subsample", type=int, default=None, help="score a random K of the sample (first K drawn)")
    ap.add_argument("--sample-seed", type=int, default=2026)
    ap.add_argument("--pool", default="all", choices=["all", "naslib"], help="draw from all cells or NASLib's scored ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proxies", default="intrain;gradalign;params")
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--memory", action="store_true", help="measure CPU peak memory (~20%% slower)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cells = sample_cells(args.space, args.n, args.sample_seed, args.pool, args.subsample)[: args.first]
    args.out.mkdir(parents=True, exist_ok=True)
    done = set()
    for part in args.out.glob("part-*.parquet"):  # resume
        done.update(pq.read_table(part, columns=["index"]).column("index").to_pylist())
    todo = [c for c in cells if c not in done]
    scorer = CellScorer(args.space, args.proxies, dataset=args.dataset, seed=args.seed, measure_memory=args.memory)
    # The run record, as raynas score writes it: the directory reads like any results
    # directory (raynas report, export, ensembles), and another config is refused.
    check_or_write_run_config(args.out, scorer.config(), {"raynas": __version__, "torch": torch.__version__,
                                                          "python": platform.python_version()},
                              columns=scorer.spec.column_roles())
    schema = row_schema(scorer.columns, scorer.config())  # parts as raynas score writes them
    print(f"{len(done)} done, {len(todo)} to score", flush=True)
    start = time.time()
    for k in range(0, len(todo), args.chunk):
        rows = list(scorer.iter_scores(todo[k : k + args.chunk]))
        table = rows_to_table(rows, schema)
        tmp = args.out / f".part-{todo[k]:05d}.tmp"
        pq.write_table(table, tmp)
        tmp.rename(args.out / f"part-{todo[k]:05d}.parquet")  # atomic: a part is whole or absent
        n = k + len(rows)
        print(f"{n}/{len(todo)} cells, {n / (time.time() - start):.3f} cells/s", flush=True)


if __name__ == "__main__":
    main()
