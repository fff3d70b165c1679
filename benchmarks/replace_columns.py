"""Replace one proxy's columns of a committed whole-space table with a complete rescore of
that proxy (``raynas.export.replace_proxy_columns``), e.g. InTrain under issue 21's
rounding-noise threshold:

    raynas export runs/nb201_cifar10_intrain /tmp/intrain.parquet --complete --drop intrain_peak_mem_mb
    python benchmarks/replace_columns.py raynas/data/scores/nb201_cifar10.parquet /tmp/intrain.parquet \\
        raynas/data/scores/nb201_cifar10.parquet
"""

from __future__ import annotations

import argparse

from raynas.export import replace_proxy_columns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the exported table whose columns are replaced")
    ap.add_argument("update", help="an export of the rescored proxies, same space, dataset, seed and cells")
    ap.add_argument("target", help="where the merged table goes (may be the base: written atomically)")
    args = ap.parse_args()
    out = replace_proxy_columns(args.base, args.update, args.target)
    print(f"{out.path}: {out.cells} cells, {out.error_rows} error rows")


if __name__ == "__main__":
    main()
