"""Build the data raynas ships inside the package (``raynas/data/``) from the project's
benchmark exports, so that a fresh machine can score and report with nothing beside it.

    RAYNAS_DATA_DIR=../shared/data python benchmarks/make_embedded_data.py

What goes in, and why each size, is in ``raynas/data/README.md``. The script is
deterministic: rerunning it rewrites byte-identical tables and probe arrays.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "raynas" / "data"
CIFAR10_PER_CLASS = 50  # ≥ 3× the 13 per class of a balanced batch of 128 (the largest default)


def write_probe(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images, labels=labels.astype(np.int16),
                        split=np.full(len(labels), "train"))


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, in file order."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=Path(os.environ.get("RAYNAS_DATA_DIR", "../shared/data")))
    args = ap.parse_args()
    src = args.source

    truth = pq.read_table(src / "nb201/ground_truth.parquet",
                          columns=["index", "cifar10_test", "cifar100_test", "imagenet16_120_test", "params_mb"])
    (PACKAGE_DATA / "nb201").mkdir(parents=True, exist_ok=True)
    pq.write_table(truth.replace_schema_metadata(None), PACKAGE_DATA / "nb201/ground_truth.parquet",
                   compression="zstd", compression_level=19)

    (PACKAGE_DATA / "nb101").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "nb101/accuracy_sample5000.parquet", PACKAGE_DATA / "nb101/accuracy_sample5000.parquet")
    (PACKAGE_DATA / "nb_macro").mkdir(exist_ok=True)
    shutil.copyfile(src / "macro/ground_truth_cifar10.parquet", PACKAGE_DATA / "nb_macro/ground_truth_cifar10.parquet")
    # DARTS: the 725 genotypes' NAS-Bench-301 accuracy, params and FLOPs (not the peers' proxy scores).
    (PACKAGE_DATA / "darts").mkdir(exist_ok=True)
    darts = pq.read_table(src / "nb301/peer_scores_suite_zero.parquet", columns=["arch", "val_accuracy", "params", "flops"])
    pq.write_table(darts.replace_schema_metadata(None), PACKAGE_DATA / "darts/nb301_suite_zero.parquet", compression="zstd")

    for dataset in ("cifar10", "cifar100"):
        with np.load(src / f"cifar/{dataset}_probe.npz") as archive:
            train = archive["split"] == "train"
            images, labels = archive["images"][train], archive["labels"][train]
        if dataset == "cifar10":
            keep = first_per_class(labels, CIFAR10_PER_CLASS)
            images, labels = images[keep], labels[keep]
        write_probe(PACKAGE_DATA / f"cifar/{dataset}_probe.npz", images, labels)

    for path in sorted(PACKAGE_DATA.rglob("*.*")):
        print(f"{path.relative_to(PACKAGE_DATA)}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
