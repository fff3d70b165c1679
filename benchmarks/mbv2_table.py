"""InTrain-NAS on mbv2 (issue 24): the structures each search chose, beside the peers'
published ones, with their FLOPs (the peers' count, at 224), parameters, layers and every
score the runs hold.

    python benchmarks/mbv2_table.py --search 450M=runs/search_mbv2_450M --search 600M=runs/search_mbv2_600M \\
        --published runs/mbv2_published

``--search BUDGET=DIR``: a ``raynas search mbv2 --strategy pool`` directory (its chosen cell is
the fittest row of ``_search/*.parquet``); ``--published DIR``: ``raynas score mbv2 --cells
@data/scores/mbv2_published.txt`` (names from the file's comments, and ``--names FILE``'s).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pyarrow.parquet as pq
import torch

from raynas.analysis import scores_and_run
from raynas.spaces import get_space
from raynas.spaces.mbv2_network import MBV2Network

SPACE = get_space("mbv2")
PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "scores" / "mbv2_published.txt"


def params(index: int) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in MBV2Network(SPACE.blocks(index)).parameters())


def cell_names(files: list[Path]) -> dict[int, str]:
    """Each structure's name: the comment line above it in a cells file."""
    names, last = {}, ""
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                last = line.lstrip("# ").split(" (")[0]
            elif line.strip():
                names[SPACE.index_of(line.strip())] = last
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", action="append", default=[], metavar="BUDGET=DIR")
    ap.add_argument("--published")
    ap.add_argument("--scores", default="intrain", help="comma-separated score columns to show")
    ap.add_argument("--names", action="append", default=[], help="more cells files whose comments name structures")
    args = ap.parse_args()
    columns = args.scores.split(",")
    rows: list[tuple[str, int, dict]] = []
    for spec in args.search:
        budget, _, folder = spec.partition("=")
        history = pq.read_table(next((Path(folder) / "_search").glob("pool-*.parquet"))).to_pylist()
        best = max(history, key=lambda r: r["fitness"])
        SPACE.index_of(best["arch"])
        rows.append((f"InTrain-NAS, {budget} (raynas; {len(history)} cells scored)", best["index"], best))
    if args.published:
        table, _ = scores_and_run(args.published)
        names = cell_names([PUBLISHED, *map(Path, args.names)])
        for row in table.to_pylist():
            SPACE.index_of(row["arch"])
            rows.append((names.get(row["index"], "published"), row["index"], row))
    print("| structure | FLOPs (M, peers' count) | params (M) | layers | " + " | ".join(columns) + " |")
    print("|---|---|---|---|" + "---|" * len(columns))
    for name, index, row in rows:
        values = " | ".join("–" if row.get(c) is None or (isinstance(row.get(c), float) and math.isnan(row[c]))
                            else f"{row[c]:.1f}" for c in columns)
        print(f"| {name} | {SPACE.structure_flops(index) / 1e6:.1f} | {params(index) / 1e6:.2f} | "
              f"{SPACE.layers(index)} | {values} |")
    print()
    for name, index, _ in rows:
        print(f"- {name}: `{SPACE.arch_str(index)}`")


if __name__ == "__main__":
    main()
