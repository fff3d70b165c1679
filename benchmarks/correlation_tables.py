"""Correlation tables (markdown) for sample runs made by score_sample.py.

    python benchmarks/correlation_tables.py runs/s1000_cifar10 runs/s1000_cifar100
    python benchmarks/correlation_tables.py --merge --peer-scores runs/s1000_cifar10 runs/base_c10

``--merge`` joins runs of the same dataset on the cells they all scored (one table per
dataset); ``--peer-scores`` adds the peers' own published NB201 scores for those cells as
extra rows (``peer:...``), so ours and theirs are compared on identical cells.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas import analysis
from raynas.results import load_results

PAPER_TAU = {  # Kendall τ reported by the papers (CIFAR-10, CIFAR-100), see seed-proxies.md
    "intrain": (0.669, 0.671), "gamma": (0.61, None), "o": (0.63, None), "intrain_additive": (0.59, None),
    "gradalign_1": (0.617, 0.633), "gradalign_2": (0.599, 0.622),
}
PAPER_TAU_NB101 = {"intrain": 0.56, "gradalign_1": 0.287, "gradalign_2": 0.284, "params": 0.31}  # CIFAR-10
# Published values for the baselines (peer-proxies.md). zero-cost-nas: |Spearman ρ| over all
# 15,625 cells, C10 (cifar10-valid test) / C100; Deeplite: Kendall τ, 500 random C100 cells.
PEER_PUBLISHED = {
    "grad_norm": "ρ 0.594 / 0.637; τ C100 0.301", "snip": "ρ 0.596 / 0.637; τ C100 0.412",
    "grasp": "ρ 0.514 / 0.547; τ C100 0.307", "fisher": "ρ 0.360 / 0.385; τ C100 0.354",
    "synflow": "ρ 0.737 / 0.763; τ C100 0.548", "synflow_log": "ρ 0.737 / 0.763; τ C100 0.548",
    "jacob_cov": "ρ 0.731 / 0.704; τ C100 0.561", "zico": "τ C100 0.538",
    "params": "τ C100 0.531", "flops": "τ C100 0.567 (MACs)",
    # The field's proxies (issue 22): the figures the seed papers quote, NB201 C10 / C100 / IN16.
    "az_expressivity": "AZ-NAS (all three with FLOPs): τ 0.741 / 0.723 / 0.710 (paper), 0.7409 C10 (notebook)",
    "vkdnw_single": "τ 0.618 / 0.634 / 0.622 (InTrain paper)",
    "te_nas_ntk": "TE-NAS (with the regions): τ 0.536 / 0.537 / 0.523 (AZ-NAS paper)",
    "gradsign": "τ 0.618 / 0.594 / 0.575 (AZ-NAS paper)", "meco": "ρ 0.89 C10 (MeCo paper)",
}


def merged_by_dataset(runs: list[Path]) -> dict[str, pa.Table]:
    """One table per dataset: the runs' columns joined on the cells every run scored."""
    groups: dict[str, list[pa.Table]] = defaultdict(list)
    for run in runs:
        table = load_results(run)
        groups[analysis.dataset_of(table)].append((table, analysis.roles_of(run)))
    merged = {}
    for dataset, tables in groups.items():
        table = tables[0][0]
        for other, roles in tables[1:]:
            extra = ["index", *(c for c in analysis.score_columns(other, roles) if c not in table.column_names)]
            table = table.join(other.select(extra), "index", join_type="inner")
        merged[dataset] = table.sort_by("index")
    return merged


def with_peer_scores(table: pa.Table, dataset: str) -> pa.Table:
    from raynas.datafiles import data_file

    suffix = {"cifar10": "c10", "cifar100": "c100"}[dataset]
    peer = pq.read_table(data_file("nb201/peer_scores.parquet"), columns=["index", "jacob_cov_naswot_v1", f"zen_naslib_{suffix}"])
    peer = peer.rename_columns(["index", "peer:jacob_cov_naswot_v1", f"peer:zen_naslib_{suffix}"])
    return analysis.join_on_key(table, peer).sort_by("index")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--merge", action="store_true", help="one table per dataset over the cells all runs scored")
    ap.add_argument("--peer-scores", action="store_true", help="add the peers' published NB201 scores as rows")
    args = ap.parse_args()
    truth = analysis.load_ground_truth(args.space)
    accuracy_of, truth = truth.accuracy_of, truth.table
    roles = {c: r for run in args.runs for c, r in analysis.roles_of(run).items()}
    tables = merged_by_dataset(args.runs) if args.merge else {run.name: load_results(run) for run in args.runs}
    for name, table in tables.items():
        table = analysis.add_intrain_ablations(table)
        for prefix in sorted({c.split("__")[0] + "__" for c in table.column_names if "__gamma" in c}):
            table = analysis.add_intrain_ablations(table, prefix)
        dataset = analysis.dataset_of(table)
        column = 0 if dataset == "cifar10" else 1
        if args.peer_scores:
            table = with_peer_scores(table, dataset)
        print(f"\n### {name}: {table.num_rows} cells, {dataset}, accuracy `{accuracy_of[dataset]}`\n")
        print("| score | τ (NaN last) | ρ (NaN last) | τ (NaN omitted) | n / NaN | paper τ / peers published | top-1 acc | recall top-10 |")
        print("|---|---|---|---|---|---|---|---|")
        scores = analysis.score_columns(table, roles) + [c for c in table.column_names if c.startswith("peer:")]
        lower = analysis.lower_is_better(roles)
        worst = analysis.correlation_table(table, truth, scores, accuracy_of[dataset], "worst", lower_is_better=lower)
        omit = {r["score"]: r for r in analysis.correlation_table(table, truth, scores, accuracy_of[dataset], "omit",
                                                                  lower_is_better=lower)}
        for r in worst:
            if args.space == "nb101":
                paper = PAPER_TAU_NB101.get(r["score"])
            else:
                paper = PAPER_TAU.get(r["score"].split("__")[-1], (None, None))[column] if "__" not in r["score"] else None
                paper = paper if paper is not None else PEER_PUBLISHED.get(r["score"])
            print(f"| {r['score']} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                  f"{omit[r['score']]['kendall_tau']:.3f} | {r['n']} / {r['n_nan']} | "
                  f"{paper if paper is not None else '–'} | {r['top1_accuracy']:.2f} | {r['recall_top10']:.1f} |")


if __name__ == "__main__":
    main()
