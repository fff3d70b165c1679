"""Copy a results directory as one part (same config, same rows, each cell once), for
committing a partial whole-space run that a later session resumes (data/scores/partial/).

    python benchmarks/compact_run.py runs/nb201_cifar10 data/scores/partial/nb201_cifar10
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.results import RUN_FILE, part_name, scan_results, write_part_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("target", type=Path)
    args = ap.parse_args()
    scan = scan_results(args.source)
    if scan.rejected or scan.duplicates:
        raise SystemExit(f"{args.source}: {len(scan.rejected)} foreign file(s), {len(scan.duplicates)} duplicate "
                         "cell(s); raynas check first")
    tables = [pq.read_table(p) for p in scan.accepted]  # with their schema metadata (the config)
    table = pa.concat_tables(tables).sort_by("index")
    cells = table.column("index").to_pylist()
    if args.target.exists():
        shutil.rmtree(args.target)
    args.target.mkdir(parents=True)
    shutil.copy(args.source / RUN_FILE, args.target / RUN_FILE)
    write_part_atomic(table, args.target, part_name(cells))
    assert scan_results(args.target).cells == set(cells)
    print(f"{len(cells)} cells ({min(cells)}..{max(cells)}) → {args.target}")


if __name__ == "__main__":
    main()
