"""Agreement between raynas' baseline scores and the scores peers published for the same
cells: Kendall τ between the two scores (not against accuracy), NaN pairs omitted.

    python benchmarks/peer_agreement.py runs/naslib150_c10 runs/base_c10 ...
    python benchmarks/peer_agreement.py --space nb101 runs/nb101_naslib
    python benchmarks/peer_agreement.py runs/naslib_b32_s0 --ceiling runs/naslib_b32_s1

``--ceiling OTHER`` adds τ between the run and another run of ours with a different seed
(other initial weights, other probe images): how well a proxy agrees with itself across
batch draws, the most any two faithful implementations can agree.

Peer files (in the folder ``RAYNAS_DATA_DIR`` names, e.g. ``RAYNAS_DATA_DIR=../shared/data``; raynas
ships none of them): NB201 ``peer_scores.parquet`` (NASWOT v1's Jacobian covariance and
NASLib's Zen on all cells), ``peer_scores_naslib_subset.parquet`` (NASLib's proxies on ~725
cells per dataset); NB101 ``peer_scores_naslib_subset500.parquet``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raynas import analysis
from raynas.datafiles import data_file
from raynas.results import load_results

# raynas column → NASLib column (NASLib's synflow is log-transformed; nwot = NASWOT v2).
NASLIB = {
    "grad_norm": "grad_norm", "snip": "snip", "grasp": "grasp", "fisher": "fisher", "jacob_cov": "jacov",
    "jc32__jacob_cov": "jacov", "synflow_log": "synflow", "naswot": "nwot", "params": "params", "flops": "flops",
}
FULL_SPACE = {"jacob_cov": "jacob_cov_naswot_v1", "jc128__jacob_cov": "jacob_cov_naswot_v1", "zen": "zen_naslib_{ds}"}
DS_SUFFIX = {"cifar10": "c10", "cifar100": "c100", "imagenet16-120": "in16"}
NASLIB_DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}


def tau(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(ours) & np.isfinite(theirs)
    if ok.sum() < 3:
        return float("nan"), int(ok.sum())
    return analysis.rank_correlation(ours[ok], theirs[ok], nan_policy="omit")["kendall_tau"], int(ok.sum())


def joined(results: pa.Table, peer: pa.Table) -> pa.Table:
    """Cells in both, the peer's clashing columns suffixed ``_peer``."""
    return analysis.join_on_key(results, peer, "index", "inner", right_suffix="_peer")


def rows_for(results: pa.Table, space: str) -> list[tuple[str, str, str, float, int]]:
    dataset = analysis.dataset_of(results)
    out = []
    if space == "nb201":
        full = pq.read_table(data_file("nb201/peer_scores.parquet")).drop_columns(["arch"])
        table = joined(results, full)
        for ours, theirs in FULL_SPACE.items():
            theirs = theirs.format(ds=DS_SUFFIX[dataset])
            if ours in table.column_names:
                out.append((ours, theirs, "peer_scores (all cells)", *tau(_col(table, ours), _col(table, theirs))))
        naslib = pq.read_table(data_file("nb201/peer_scores_naslib_subset.parquet"))
        naslib = naslib.filter(pc.equal(naslib.column("dataset"), NASLIB_DATASET[dataset])).drop_columns(["arch", "dataset"])
    else:
        from raynas.spaces import get_space

        naslib = pq.read_table(data_file("nb101/peer_scores_naslib_subset500.parquet"))
        space_ = get_space("nb101")
        naslib = naslib.append_column("index", pa.array([space_.index_of(h) for h in naslib.column("hash").to_pylist()]))
        naslib = naslib.drop_columns(["hash"])
    first, repeat = first_and_repeat(naslib)
    table = joined(results, first)
    for ours, theirs in NASLIB.items():
        if ours in results.column_names and theirs in naslib.column_names:
            peer_name = f"{theirs}_peer" if theirs in results.column_names else theirs
            out.append((ours, f"NASLib {theirs}", "NASLib subset", *tau(_col(table, ours), _col(table, peer_name))))
    if repeat.num_rows >= 3:  # NASLib scored some cells twice: its own repeatability
        both = joined(first, repeat)
        for theirs in sorted(set(NASLIB.values()) & set(naslib.column_names) - {"params", "flops"}):
            out.append((f"NASLib {theirs} (1st)", f"NASLib {theirs} (2nd)", "NASLib repeats",
                        *tau(_col(both, theirs), _col(both, theirs + "_peer"))))
    return out


def first_and_repeat(peer: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The first score of each cell, and the second one where a cell was scored twice."""
    keys = peer.column("index").to_pylist()
    seen: dict[int, int] = {}
    first, second = [], []
    for row, k in enumerate(keys):
        seen[k] = seen.get(k, 0) + 1
        (first if seen[k] == 1 else second if seen[k] == 2 else []).append(row)
    return peer.take(pa.array(first, pa.int64())), peer.take(pa.array(second, pa.int64()))


def _col(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--space", default="nb201", choices=["nb201", "nb101"])
    ap.add_argument("--ceiling", type=Path, help="another run of ours with a different seed")
    args = ap.parse_args()
    other = load_results(args.ceiling) if args.ceiling else None
    for run in args.runs:
        results = first_and_repeat(load_results(run))[0]
        dataset = analysis.dataset_of(results)
        print(f"\n### {run.name}: {results.num_rows} {args.space} cells, {dataset}\n")
        print("| raynas | peer score | source | Kendall τ (ours vs peer) | cells |" + (" τ ours vs ours, other seed |" if other else ""))
        print("|---|---|---|---|---|" + ("---|" if other else ""))
        for ours, theirs, source, t, n in rows_for(results, args.space):
            ceiling = ""
            if other is not None and ours in other.column_names:
                both = joined(results.select(["index", ours]), other.select(["index", ours]))
                ceiling = f" {tau(_col(both, ours), _col(both, ours + '_peer'))[0]:.3f} |"
            print(f"| {ours} | {theirs} | {source} | {t:.3f} | {n} |{ceiling}")


if __name__ == "__main__":
    main()
