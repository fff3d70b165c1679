"""τ / ρ of InTrain and ZiCo before and after their rounding-noise thresholds (issue 21).

Each folder is a ``benchmarks/score_sample.py`` run. A column with a labelled twin scored
with ``noise_tol=0`` (``z0__zico`` beside ``zico``) is compared with it; InTrain's columns
without a twin are compared with the same cells of the committed whole-space table of the
folder's dataset (``raynas.load_scores``) where it holds InTrain before the threshold, or with
the table given by ``--before DATASET=FILE`` (a whole-space table rescored under today's
default no longer holds the old definition: take the old one from git, e.g.
``git show 84b5c3e:raynas/data/scores/nb201_cifar10.parquet > /tmp/c10_before.parquet``).

    python benchmarks/threshold_tables.py runs/intrain_s1000_c10 runs/intrain_s1000_c100 runs/zico_s300_c10
"""

from __future__ import annotations

import argparse
import functools
import json
import math

import pyarrow.dataset as ds

from raynas.analysis import rank_correlation
from raynas.export import load_scores
from raynas.spaces import get_space

INTRAIN = ("intrain", "gamma", "o")


@functools.lru_cache(maxsize=None)
def before_threshold(dataset: str, path: str | None) -> dict:
    """The whole-space table of ``dataset`` (``path``, or the shipped one) that holds InTrain
    with ``noise_tol=0``; read once per dataset, whichever columns are compared with it."""
    import pyarrow.parquet as pq

    table = pq.read_table(path) if path else load_scores("nb201", dataset)
    run = json.loads(table.schema.metadata[b"raynas.run"])
    tol = next(p.get("noise_tol", 0) for p in run["config"]["proxies"] if p["label"] == "intrain")
    if tol != 0:
        raise SystemExit(f"the {dataset} whole-space table holds InTrain with noise_tol={tol}, not the definition "
                         f"before the threshold: pass --before {dataset}=FILE (an older table, from git)")
    return table.to_pydict()


def pairs(table: dict, before: dict[str, str]) -> list[tuple[str, str, list[float], list[float]]]:
    """(dataset, column, new values, old values) for every comparable column."""
    dataset, cells = table["dataset"][0], table["index"]
    found = []
    for column in table:
        twin = next((c for c in table if c.endswith(f"__{column}") and c.split("__")[0].endswith("0")), None)
        if twin:
            found.append((dataset, column, table[column], table[twin]))
        elif column in INTRAIN:
            old = before_threshold(dataset, before.get(dataset))
            row = {i: k for k, i in enumerate(old["index"])}
            found.append((dataset, column, table[column], [old[column][row[i]] for i in cells]))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--before", action="append", default=[], metavar="DATASET=FILE",
                    help="the whole-space table of DATASET scored before the threshold (default: the shipped one)")
    args = ap.parse_args()
    before = dict(b.split("=", 1) for b in args.before)
    truth = get_space("nb201").ground_truth()
    print("| dataset | cells | score | τ new | τ before | ρ new | ρ before | largest relative change |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        table = ds.dataset(folder).to_table().to_pydict()
        if set(table["space"]) != {"nb201"}:
            raise SystemExit(f"{folder}: not an NB201 table (space {sorted(set(table['space']))}); the thresholds' "
                             "before and after are compared on NB201 cells")
        for dataset, column, new, old in pairs(table, before):
            accuracy = truth.by_cell(dataset)
            acc = [accuracy[i] for i in table["index"]]
            a, b = rank_correlation(new, acc), rank_correlation(old, acc)
            ao, bo = rank_correlation(new, acc, "omit"), rank_correlation(old, acc, "omit")
            moved = max((abs(x - y) / max(abs(x), abs(y)) for x, y in zip(new, old)
                         if math.isfinite(x) and math.isfinite(y) and (x or y)), default=0.0)
            print(f"| {dataset} | {len(new)} | {column} | {a['kendall_tau']:.4f} ({ao['kendall_tau']:.4f}) | "
                  f"{b['kendall_tau']:.4f} ({bo['kendall_tau']:.4f}) | {a['spearman_rho']:.4f} | "
                  f"{b['spearman_rho']:.4f} | {moved:.1e} |")


if __name__ == "__main__":
    main()
