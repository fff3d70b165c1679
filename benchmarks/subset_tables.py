"""Tables for ``search_table.py --subset`` from a scored sample: the sample's own columns
(CIFAR-10) beside each dataset's whole-space columns on the same cells, so that a proxy
scored only on a sample (NASWOT on the 1,000-cell sample) is searched beside the others on
equal terms.

    python benchmarks/score_sample.py --out runs/s1000_naswot_c10 --dataset cifar10 --n 1000 \\
        --sample-seed 2026 --proxies naswot
    python benchmarks/subset_tables.py runs/s1000_naswot_c10 runs/s1000_subset --sample-columns naswot
    python benchmarks/search_table.py --subset --transfer cifar10 --fitness naswot,intrain,synflow,params \\
        --table cifar10=runs/s1000_subset/cifar10.parquet --table cifar100=runs/s1000_subset/cifar100.parquet \\
        --table imagenet16-120=runs/s1000_subset/imagenet16-120.parquet --runs 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

WHOLE = {"cifar10": "nb201_cifar10.parquet", "cifar100": "nb201_cifar100.parquet",
         "imagenet16-120": "nb201_imagenet16-120.parquet"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sample", type=Path, help="a scored sample (results folder or Parquet file), scored on CIFAR-10")
    ap.add_argument("out", type=Path)
    ap.add_argument("--sample-columns", default="naswot")
    ap.add_argument("--whole-columns", default="intrain,synflow,params")
    ap.add_argument("--scores", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "scores")
    args = ap.parse_args()
    sample_columns = args.sample_columns.split(",")
    sample = ds.dataset(args.sample, format="parquet").to_table(columns=["index", *sample_columns]).sort_by("index")
    cells = sample.column("index")
    if len(pc.unique(cells)) != len(cells):
        raise SystemExit(f"{args.sample}: a cell is there twice")
    args.out.mkdir(parents=True, exist_ok=True)
    for dataset, name in WHOLE.items():
        table = pq.read_table(args.scores / name, columns=["index", *args.whole_columns.split(",")])
        table = table.filter(pc.is_in(table.column("index"), value_set=cells)).sort_by("index")
        if dataset == "cifar10":
            for column in sample_columns:
                table = table.append_column(column, sample.column(column))
        pq.write_table(table, args.out / f"{dataset}.parquet")
        print(f"{dataset}: {table.num_rows} cells → {args.out / f'{dataset}.parquet'}")


if __name__ == "__main__":
    main()
