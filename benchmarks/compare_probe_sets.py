"""How much the rank correlations move between two probe sets, on the same cells.

Score one cell sample twice with score_sample.py — once with the project's probe files
(``RAYNAS_DATA_DIR``), once with the probes shipped in the package (no ``RAYNAS_DATA_DIR``,
an empty cache) — then:

    python benchmarks/compare_probe_sets.py runs/probes_full_c10 runs/probes_embedded_c10

prints, per score column, Kendall τ with the benchmark accuracy under each probe set, the
difference, and τ between the two scorings of the same cells (how much the ranking itself
moves).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from raynas import analysis
from raynas.results import load_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path, help="results scored with the first probe set")
    ap.add_argument("second", type=Path, help="the same cells scored with the second")
    args = ap.parse_args()
    a, b = load_results(args.first), load_results(args.second)
    dataset = analysis.dataset_of(a)
    if analysis.dataset_of(b) != dataset or a.column("index").to_pylist() != b.column("index").to_pylist():
        raise SystemExit("the two runs must score the same cells of the same dataset")
    truth = analysis.load_ground_truth("nb201")
    accuracy_of, truth = truth.accuracy_of, truth.table
    accuracy = analysis.join_ground_truth(a.select(["index"]), truth).column(accuracy_of[dataset]).to_numpy()
    print(f"{a.num_rows} NB201 cells, {dataset}; τ against {accuracy_of[dataset]} (NaN last)")
    print(f"| score | τ {args.first.name} | τ {args.second.name} | difference | τ between the two |")
    print("|---|---|---|---|---|")
    for column in analysis.score_columns(a, analysis.roles_of(args.first)):
        if column not in b.column_names:
            continue
        x = a.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        y = b.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        tau_x = analysis.rank_correlation(x, accuracy)["kendall_tau"]
        tau_y = analysis.rank_correlation(y, accuracy)["kendall_tau"]
        between = analysis.rank_correlation(x, y)["kendall_tau"]
        print(f"| {column} | {tau_x:.3f} | {tau_y:.3f} | {tau_y - tau_x:+.3f} | {between:.3f} |")


if __name__ == "__main__":
    main()
