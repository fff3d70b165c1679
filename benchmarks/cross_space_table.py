"""The cross-space table (issue 24): Kendall τ of each proxy against each space's (and task's)
ground truth — raynas' own scorings beside NAS-Bench-Suite-Zero's published scores.

    RAYNAS_DATA_DIR=../shared/data python benchmarks/cross_space_table.py \
        --ours darts=runs/darts_s725 --ours nb_macro=runs/nb_macro_s1000 \
        --ours nb201-cifar10=raynas/data/scores/nb201_cifar10.parquet

``--ours COLUMN=SOURCE``: a results directory or an exported table, reported against its
space's own ground truth (``raynas report``'s rows, with each built-in ensemble, ``recommended``
included, whose columns are there). Suite-Zero's rows come from the project's exports of NASLib's files
(``nb201/``, ``nb301/``, ``tnb101/`` under ``RAYNAS_DATA_DIR``): each proxy's τ against the
accuracy stored beside it, on the cells it was computed on (NaN and Suite-Zero's −1e8
failure value ranked last; its NB201 file covers CIFAR-10 and ImageNet16-120, 9,445 cells
each; TransNAS-Bench-101 micro's proxies are ranked against the ground truth raynas ships —
the same metric from NASLib's later export, which differs from the ``val_accuracy`` stored
beside the proxies by up to 6.7 points on class_scene (correlation 0.997) —, so that both
rows are judged by one truth; ``--same-cells``: only the cells of raynas' own column of the same name). τ is printed
to three decimals (``--rho``: "τ (ρ)"); "–" where a proxy was not run.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import pyarrow.parquet as pq

from raynas.analysis import correlation_report, rank_correlation

SUITE_ZERO_PROXIES = ("synflow", "grasp", "fisher", "grad_norm", "snip", "jacov", "nwot", "epe_nas", "zen", "l2_norm",
                      "plain", "params", "flops")
TNB101_TASKS = ("class_scene", "class_object", "jigsaw", "room_layout", "segmentsemantic", "normal", "autoencoder")


def suite_zero_columns(root: Path, cells_of: dict[str, set[int]] | None = None) -> dict[str, dict[str, tuple]]:
    """{space/task column: {proxy: (τ, ρ)}} from Suite-Zero's exported files; where ``cells_of``
    names a column's cells (raynas' own scoring of it), on those cells only."""
    from raynas.spaces import get_space

    columns: dict[str, dict[str, tuple]] = {}

    def add(name: str, table, accuracy: list[float], index: list[int]) -> None:
        keep = [cells_of is None or name not in cells_of or i in cells_of[name] for i in index]
        columns[name] = {}
        for proxy in SUITE_ZERO_PROXIES:
            if proxy in table.column_names:
                scores = [math.nan if v is None or v <= -1e7 else v for v in table.column(proxy).to_pylist()]
                r = rank_correlation([v for v, k in zip(scores, keep) if k], [a for a, k in zip(accuracy, keep) if k])
                columns[name][proxy] = (r["kendall_tau"], r["spearman_rho"])

    nb201 = root / "nb201" / "peer_scores_suite_zero.parquet"
    if nb201.is_file():
        truth = get_space("nb201").ground_truth()
        table = pq.read_table(nb201)
        datasets = table.column("dataset").to_pylist()
        for dataset in truth.accuracy_of:
            part = table.filter([d == dataset for d in datasets])
            by_cell = truth.by_cell(dataset)
            index = part.column("index").to_pylist()
            add(f"nb201-{dataset}", part, [by_cell.get(i, math.nan) for i in index], index)
    nb301 = root / "nb301" / "peer_scores_suite_zero.parquet"
    if nb301.is_file():
        table = pq.read_table(nb301)
        darts = get_space("darts")
        add("darts", table, table.column("val_accuracy").to_pylist(),
            [darts.index_of(a) for a in table.column("arch").to_pylist()])
    for kind in ("micro", "macro"):
        path = root / "tnb101" / f"peer_scores_suite_zero_{kind}.parquet"
        if path.is_file():
            table = pq.read_table(path)
            tasks = table.column("task").to_pylist()
            for task in TNB101_TASKS:
                part = table.filter([t == task for t in tasks])
                if kind == "micro":  # against raynas' ground truth, the one its own rows use (see the doc)
                    micro = get_space("tnb101_micro")
                    index = [micro.index_of(a) for a in part.column("arch").to_pylist()]
                    by_cell = micro.ground_truth().by_cell(task)
                    add(f"tnb101_micro-{task}", part, [by_cell[i] for i in index], index)
                else:
                    add(f"tnb101_macro-{task}", part, part.column("val_accuracy").to_pylist(), list(range(part.num_rows)))
    return columns


def cells_of_source(source: str) -> set[int]:
    from raynas.analysis import scores_and_run

    table, _ = scores_and_run(source)
    return set(table.column("index").to_pylist())


def our_column(source: str) -> dict[str, tuple]:
    """``raynas report``'s rows: each proxy, and each built-in ensemble whose columns are there."""
    rows = correlation_report(source)
    return {str(r["score"]): (float(r["kendall_tau"]), float(r["spearman_rho"])) for r in rows}


def markdown(ours: dict[str, dict[str, tuple]], peers: dict[str, dict[str, tuple]], rho: bool = False) -> str:
    """τ per proxy and column (with ``rho``: "τ (ρ)")."""
    columns = [c for c in [*ours, *(c for c in peers if c not in ours)]
               if any(v[0] == v[0] for v in [*ours.get(c, {}).values(), *peers.get(c, {}).values()])]  # no empty column
    lines = ["| proxy | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]

    def cell(values: dict[str, tuple], proxy: str) -> str:
        tau, r = values.get(proxy, (math.nan, math.nan))
        return "–" if tau != tau else f"{tau:.3f} ({r:.3f})" if rho else f"{tau:.3f}"

    our_proxies = list(dict.fromkeys(p for values in ours.values() for p in values))
    for proxy in our_proxies:
        lines.append(f"| **{proxy}** (raynas) | " + " | ".join(cell(ours.get(c, {}), proxy) for c in columns) + " |")
    for proxy in SUITE_ZERO_PROXIES:
        if any(proxy in values for values in peers.values()):
            lines.append(f"| {proxy} (Suite-Zero) | " + " | ".join(cell(peers.get(c, {}), proxy) for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", action="append", default=[], metavar="COLUMN=SOURCE")
    ap.add_argument("--no-peers", action="store_true", help="only raynas' own columns")
    ap.add_argument("--same-cells", action="store_true",
                    help="Suite-Zero's τ on the cells raynas scored (for a column raynas scored part of)")
    ap.add_argument("--only", action="append", default=[], metavar="PREFIX",
                    help="only the columns whose name starts with PREFIX (repeatable), e.g. tnb101_micro")
    ap.add_argument("--rho", action="store_true", help="each cell as τ (ρ), Spearman's ρ beside Kendall's τ")
    args = ap.parse_args()
    ours = {}
    for spec in args.ours:
        name, _, source = spec.partition("=")
        if not source:
            raise SystemExit(f"--ours {spec!r}: expected COLUMN=SOURCE")
        ours[name] = our_column(source)
    root = Path(os.environ.get("RAYNAS_DATA_DIR", "../shared/data"))
    sources = dict(spec.partition("=")[::2] for spec in args.ours)
    cells = {name: cells_of_source(source) for name, source in sources.items()} if args.same_cells else None
    peers = {} if args.no_peers else suite_zero_columns(root, cells)
    if args.only:
        keep = lambda name: name.startswith(tuple(args.only))  # noqa: E731
        ours, peers = {k: v for k, v in ours.items() if keep(k)}, {k: v for k, v in peers.items() if keep(k)}
    print(markdown(ours, peers, args.rho))


if __name__ == "__main__":
    main()
