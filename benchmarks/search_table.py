"""The search table of docs/results.md: accuracy of the cell each search chooses, mean ± std
over repeated searches (seeds 0..runs-1), in lookup mode on whole-space scored tables.

    python benchmarks/search_table.py --table cifar10=raynas/data/scores/nb201_cifar10.parquet \\
        --table structural=raynas/data/scores/nb201_cifar10_structural.parquet --fitness params,intrain

A table is named after the dataset it was scored on (``cifar10``, ``cifar100``,
``imagenet16-120``), or ``structural``: columns whose ranking does not depend on the dataset
(params, flops: NB201's datasets change only the classifier's size, a constant, and the input
resolution, a common factor of every convolution), which serve every dataset. For each
dataset a fitness column comes from that dataset's own table, else the structural one; with
``--transfer cifar10`` a dataset with neither takes the CIFAR-10 scores, marked † (the
proxy's ranking computed with CIFAR-10's classifier and input size, against the other
dataset's accuracies); otherwise the cell is "–". Accuracy: NB201 test accuracy of the
chosen cell on each dataset (``raynas.spaces.nb201.ACCURACY_OF``).

``--subset``: the tables hold the same part of the space (a proxy scored only there, e.g.
GradAlign in ``data/scores/partial/nb201_cifar10_gpu``); the searches then run over those
cells alone, every fitness on the same cells, ``sample`` only (a mutation would leave them):

    python benchmarks/search_table.py --subset --fitness gradalign_2,intrain,params \
        --table cifar10=data/scores/partial/nb201_cifar10_gpu/part-0000000-c8d3835cc1.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas.search import Fitness, TableEvaluator, run_search
from raynas.spaces import get_space
from raynas.spaces.nb201 import ACCURACY_OF

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
PLANS = [("sample", 10), ("sample", 100), ("sample", 1000), ("evolution", 100), ("evolution", 1000)]
NASWOT_PUBLISHED = {  # NASWOT (Mellor et al. 2021), Table 2: N = 10, 100, 1000
    ("sample", 10): ("92.44 ± 1.13", "68.62", "41.31"),
    ("sample", 100): ("92.81 ± 0.99", "69.48", "43.10"),
    ("sample", 1000): ("92.96 ± 0.81", "69.98", "44.44"),
}


def accuracies(dataset: str) -> np.ndarray:
    truth = get_space("nb201").ground_truth().table.sort_by("index")
    return truth.column(ACCURACY_OF[dataset]).to_numpy()


def renumbered(table, cells: np.ndarray):
    """``table`` with its cells numbered by their position in ``cells``."""
    position = {int(c): i for i, c in enumerate(cells)}
    index = [position[int(c)] for c in table.column("index").to_pylist()]
    return table.set_column(table.column_names.index("index"), "index", pa.array(index, pa.int64()))


def repeated(strategy: str, size: int, evaluator: TableEvaluator, fitness: Fitness, accuracy: np.ndarray,
             runs: int, space) -> np.ndarray:
    """Accuracies of the cells ``runs`` searches choose; ``space``: NB201, or for ``--subset``
    the renumbered cells (``range(k)``: sampling needs only their count)."""
    chosen = []
    for seed in range(runs):
        state = run_search(strategy, space, evaluator, fitness, seed, n=size, budget=size, generation=1)
        chosen.append(accuracy[state.best()])
    return np.asarray(chosen)


def source_for(column: str, dataset: str, tables: dict, transfer: str | None) -> str | None:
    """The table a dataset's searches read ``column`` from (see the module doc)."""
    for name in (dataset, "structural", transfer):
        if name and name in tables and column in tables[name].column_names:
            return name
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="append", required=True, help="NAME=FILE.parquet (a whole-space table)")
    ap.add_argument("--fitness", default="params", help="comma-separated fitness columns")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--transfer", help="the dataset whose table serves datasets without one (marked †)")
    ap.add_argument("--subset", action="store_true",
                    help="the tables hold the same part of the space: sample searches over those cells only")
    args = ap.parse_args()
    tables = {}
    for item in args.table:
        name, _, path = item.partition("=")
        if name not in (*DATASETS, "structural"):
            raise SystemExit(f"--table {item}: name it after its dataset ({', '.join(DATASETS)}) or 'structural'")
        table = pq.read_table(Path(path))
        if table.num_rows != 15_625 and not args.subset:
            raise SystemExit(f"{path}: {table.num_rows} cells; lookup needs the whole space (15,625), "
                             "or --subset to search only the cells it holds")
        tables[name] = table
    truth = {d: accuracies(d) for d in DATASETS}
    space, plans = get_space("nb201"), PLANS
    if args.subset:
        cells = np.unique(next(iter(tables.values())).column("index").to_numpy())
        for name, table in tables.items():
            if not np.array_equal(np.unique(table.column("index").to_numpy()), cells):
                raise SystemExit(f"--subset: table {name} holds other cells than the rest")
        tables = {name: renumbered(table, cells) for name, table in tables.items()}
        truth = {d: acc[cells] for d, acc in truth.items()}
        space, plans = range(len(cells)), [p for p in PLANS if p[0] == "sample" and p[1] < len(cells)]
        print(f"over the {len(cells):,} cells the tables hold ({cells.min()}–{cells.max()}), sample only; ", end="")
    print(f"{args.runs} searches each (seeds 0..{args.runs - 1}); accuracy of the chosen cell, mean ± std\n")
    print("| strategy | N / budget | fitness (table) | CIFAR-10 | CIFAR-100 | ImageNet16-120 |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)  # a random cell, for scale
    picks = rng.choice(len(space), size=args.runs, replace=False)
    print("| random cell | 1 | – | " + " | ".join(f"{truth[d][picks].mean():.2f} ± {truth[d][picks].std():.2f}"
                                               for d in DATASETS) + " |")
    for column in args.fitness.split(","):
        sources = {d: source_for(column, d, tables, args.transfer) for d in DATASETS}
        if not any(sources.values()):
            raise SystemExit(f"no table has column {column!r}")
        evaluators = {name: TableEvaluator(tables[name], [column]) for name in set(sources.values()) if name}
        for strategy, size in plans:
            cells = []
            for d in DATASETS:
                source = sources[d]
                if source is None:
                    cells.append("–")
                    continue
                chosen = repeated(strategy, size, evaluators[source], Fitness.parse(column), truth[d], args.runs, space)
                mark = " †" if source not in (d, "structural") else ""
                cells.append(f"{chosen.mean():.2f} ± {chosen.std():.2f}{mark}")
            label = "structural" if set(sources.values()) <= {"structural", None} else "scored"
            print(f"| {strategy} | {size} | {column} ({label}) | " + " | ".join(cells) + " |", flush=True)
    print("\nPublished, NASWOT fitness (Mellor et al. 2021): "
          + "; ".join(f"N={n}: {' / '.join(v)}" for (_, n), v in NASWOT_PUBLISHED.items())
          + "; REA with training 93.92 ± 0.30 (CIFAR-10); the space's best 94.37.")


if __name__ == "__main__":
    main()
