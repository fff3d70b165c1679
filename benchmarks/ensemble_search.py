"""Choose a training-free ensemble under an honest protocol, and list every combination tried.

The choice reads one dataset's accuracies only (NB201 CIFAR-10 by default): every
combination of 1..K of the candidate score columns, under both combinations of
raynas.ensemble (rank and log-rank sums), is scored by Kendall τ against those accuracies
on the tables given (results directories or exported tables, joined on the cells they all
have). The full list goes to ``--out`` (CSV, best first); the best is printed. It is then
reported unchanged elsewhere (``--report``: other tables, other datasets, other spaces),
where no accuracy takes part in choosing.

    python benchmarks/ensemble_search.py data/scores/samples/nb201_cifar10_s1000_field.parquet data/scores/samples/nb201_cifar10_s1000_intrain.parquet \\
        --candidates az_expressivity,az_progressivity,az_trainability,meco,flops,intrain,gamma,o --max-size 4 \\
        --out docs/ensemble_search_c10.csv
    python benchmarks/ensemble_search.py --report "logrank:meco+az_trainability+flops" runs/s1000_c100_field
    python benchmarks/ensemble_search.py --report recommended --restrict ../shared/data/nb201/peer_scores_suite_zero.parquet \
        runs/nb201_cifar10_mecog raynas/data/scores/nb201_cifar10.parquet
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa

from raynas.analysis import column_roles, load_ground_truth, lower_is_better, rank_correlation, scores_and_run
from raynas.ensemble import COMBINATIONS, Ensemble
from raynas.proxies.registry import parse_proxies


def joined(sources: list[str]) -> tuple[pa.Table, dict, str, str]:
    """(table of the cells every source has, column roles, space, dataset)."""
    table, roles, space, dataset = None, {}, None, None
    for source in sources:
        t, run = scores_and_run(source)
        if run:
            source_space, source_dataset, source_roles = run["config"]["space"], run["config"]["dataset"], column_roles(run)
        else:  # a table written without its run record (the early sample tables): built-in roles
            source_space, source_dataset = t.column("space")[0].as_py(), t.column("dataset")[0].as_py()
            source_roles = {c: r for cp in parse_proxies("all") for c, r in cp.column_roles().items()}
        if dataset is not None and (source_space, source_dataset) != (space, dataset):
            raise SystemExit(f"{source}: {source_space} {source_dataset}, the others are {space} {dataset}")
        space, dataset = source_space, source_dataset
        roles.update(source_roles)
        keep = ["index", *(c for c, r in source_roles.items() if r.get("role") == "score" and c in t.column_names
                           and (table is None or c not in table.column_names))]
        t = t.select(keep)
        table = t if table is None else table.join(t, "index", join_type="inner")
    return table.sort_by("index"), roles, space, dataset


def accuracies(table: pa.Table, space: str, dataset: str) -> np.ndarray:
    truth = load_ground_truth(space, dataset=dataset)
    column = truth.accuracy_of[dataset]
    known = dict(zip(truth.table.column("index").to_pylist(), truth.table.column(column).to_pylist()))
    return np.asarray([known.get(i, np.nan) for i in table.column("index").to_pylist()], dtype=np.float64)


def tau_of(ensemble: Ensemble, columns: dict, lower: set, acc: np.ndarray, key: str = "kendall_tau") -> float:
    return rank_correlation(ensemble.values(columns, lower), acc)[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="results directories or exported tables (one space and dataset)")
    ap.add_argument("--candidates", help="score columns to combine (default: every score column of the sources)")
    ap.add_argument("--max-size", type=int, default=4)
    ap.add_argument("--out", help="CSV of every combination tried, best first")
    ap.add_argument("--report", action="append", default=[], metavar="ENSEMBLE",
                    help="instead of searching, report these ensembles (raynas.ensemble syntax) on the sources")
    ap.add_argument("--restrict", help="only the cells whose index is in this Parquet file's index column (e.g. "
                                       "../shared/data/nb201/peer_scores_suite_zero.parquet: VKDNW's 9,445-cell subset)")
    args = ap.parse_args()
    table, roles, space, dataset = joined(args.sources)
    if args.restrict:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        keep = pa.array(sorted(set(pq.read_table(args.restrict, columns=["index"]).column("index").to_pylist())))
        table = table.filter(pc.is_in(table.column("index"), value_set=keep))
    acc = accuracies(table, space, dataset)
    lower = lower_is_better(roles)
    if args.report:
        for text in args.report:
            ensemble = Ensemble.parse(text)
            columns = {m: table.column(m).to_numpy(zero_copy_only=False) for m in ensemble.members}
            print(f"{ensemble.name}: τ {tau_of(ensemble, columns, lower, acc):.4f}, "
                  f"ρ {tau_of(ensemble, columns, lower, acc, 'spearman_rho'):.4f} on {table.num_rows} {space} "
                  f"{dataset} cells")
        return
    names = args.candidates.split(",") if args.candidates else [c for c in table.column_names if c != "index"]
    if missing := [c for c in names if c not in table.column_names]:
        raise SystemExit(f"--candidates: {missing} are not score columns of the sources ({table.column_names[1:]})")
    columns = {c: table.column(c).to_numpy(zero_copy_only=False) for c in names}
    rows = []
    for size in range(1, args.max_size + 1):
        for members in itertools.combinations(names, size):
            for combine in (COMBINATIONS if size > 1 else ("rank",)):
                ensemble = Ensemble("+".join(members), members, combine)
                rows.append({"combine": combine, "members": "+".join(members), "size": size,
                             "kendall_tau": tau_of(ensemble, columns, lower, acc)})
    rows.sort(key=lambda r: -r["kendall_tau"])
    print(f"{len(rows)} combinations of {len(names)} columns on {table.num_rows} {space} {dataset} cells; best:")
    for r in rows[:15]:
        print(f"  τ {r['kendall_tau']:.4f}  {r['combine']}:{r['members']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**r, "kendall_tau": f"{r['kendall_tau']:.4f}"} for r in rows)


if __name__ == "__main__":
    main()
