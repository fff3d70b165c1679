"""Reference scores for the hot-path equivalence test (tests/test_hotpath_equivalence.py):
every component of every proxy on fixed NB201 and NB101 cells, computed by the version of
raynas first on ``sys.path`` — run it against the commit before a hot-path change:

    git archive bda6610 raynas | tar -x -C .baseline/bda6610     # or: benchmarks/overhead.py --baseline bda6610
    RAYNAS_DATA_DIR=../shared/data PYTHONPATH=.baseline/bda6610 \
        python benchmarks/hotpath_reference.py --out tests/data/hotpath_reference.json --ref bda6610

The probe images are the project's (``RAYNAS_DATA_DIR``), as the test reads them.

The float64 reference of ``tests/test_reproducibility.py`` (this checkout's definitions, in
float64, where any CPU agrees to ~1e-14):

    RAYNAS_DATA_DIR=../shared/data python benchmarks/hotpath_reference.py \
        --out tests/data/float64_reference.json --ref HEAD --precision float64 --nb201-cells 2000 --no-nb101
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

# (space, cells, proxies): NB201 cells of the overhead benchmark; two of the smallest NB101
# cells, with GradAlign at the NB101 paper's batch of 32.
CASES = (
    ("nb201", (13714, 6111, 100, 2000, 9000), "all"),
    ("nb101", ("020d47975f503b9f1e24e6c4e647f2da", "0b777e9e258b202148366f4635fc4b18"),
     "intrain;gradalign:batch_size=32;grad_norm;snip;grasp;fisher;jacob_cov;synflow;naswot;zen;zico;params;flops"),
)


def encode(value: float) -> float | str:
    """JSON has no NaN/inf: keep them as strings."""
    return value if math.isfinite(value) else repr(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ref", required=True, help="the git ref whose code computed the scores (recorded)")
    ap.add_argument("--nb101-cells", nargs=2, help="override the NB101 cells (hashes)")
    ap.add_argument("--nb201-cells", help="override the NB201 cells (comma-separated indices)")
    ap.add_argument("--no-nb101", action="store_true", help="NB201 cells only")
    ap.add_argument("--precision", default="float32")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from raynas.scoring import CellScorer

    cases = []
    for space, cells, proxies in CASES:
        if space == "nb101" and args.no_nb101:
            continue
        if space == "nb101" and args.nb101_cells:
            cells = tuple(args.nb101_cells)
        if space == "nb201" and args.nb201_cells:
            cells = tuple(int(c) for c in args.nb201_cells.split(","))
        scorer = CellScorer(space, proxies, dataset="cifar10", seed=0, measure_memory=False, precision=args.precision)
        for cell in cells:
            row = scorer.score(cell)
            cases.append({"space": space, "cell": cell, "proxies": proxies, "status": row["status"],
                          "scores": {c: encode(row[c]) for c in scorer.score_columns}})
            print(space, cell, row["status"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"ref": args.ref, "dataset": "cifar10", "seed": 0, "precision": args.precision,
                                    "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
