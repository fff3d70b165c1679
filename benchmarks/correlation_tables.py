"""Correlation tables (markdown) for sample runs made by score_sample.py.

    python benchmarks/correlation_tables.py runs/s1000_cifar10 runs/s1000_cifar100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.compute as pc

from raynas import analysis
from raynas.results import load_results

PAPER_TAU = {  # Kendall τ reported by the papers (CIFAR-10, CIFAR-100), see seed-proxies.md
    "intrain": (0.669, 0.671), "gamma": (0.61, None), "o": (0.63, None), "intrain_additive": (0.59, None),
    "gradalign_1": (0.617, 0.633), "gradalign_2": (0.599, 0.622),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--space", default="nb201")
    args = ap.parse_args()
    truth, accuracy_of = analysis.load_ground_truth(args.space)
    for run in args.runs:
        table = analysis.add_intrain_ablations(load_results(run))
        for prefix in sorted({c.split("__")[0] + "__" for c in table.column_names if "__gamma" in c}):
            table = analysis.add_intrain_ablations(table, prefix)
        dataset = pc.unique(table.column("dataset")).to_pylist()[0]
        column = 0 if dataset == "cifar10" else 1
        print(f"\n### {run.name}: {table.num_rows} cells, {dataset}, accuracy `{accuracy_of[dataset]}`\n")
        print("| score | τ (NaN last) | ρ (NaN last) | τ (NaN omitted) | n / NaN | paper τ | top-1 acc | recall top-10 |")
        print("|---|---|---|---|---|---|---|---|")
        scores = analysis.score_columns(table)
        worst = analysis.correlation_table(table, truth, scores, accuracy_of[dataset], "worst")
        omit = {r["score"]: r for r in analysis.correlation_table(table, truth, scores, accuracy_of[dataset], "omit")}
        for r in worst:
            paper = PAPER_TAU.get(r["score"].split("__")[-1], (None, None))[column] if "__" not in r["score"] else None
            print(f"| {r['score']} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                  f"{omit[r['score']]['kendall_tau']:.3f} | {r['n']} / {r['n_nan']} | "
                  f"{paper if paper is not None else '–'} | {r['top1_accuracy']:.2f} | {r['recall_top10']:.1f} |")


if __name__ == "__main__":
    main()
