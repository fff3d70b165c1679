"""Rank correlation and top-k of proxy scores against benchmark accuracies.

NaN handling, stated once: a cell whose score is NaN (degenerate cell, failed proxy) or
−inf is ranked *below every finite score* under ``nan_policy="worst"`` (the default — such a
cell is one no search would pick; AZ-NAS does the same), or dropped under ``"omit"``. Cells
with no accuracy are always dropped. Kendall τ is τ-b (ties allowed), Spearman ρ is computed
on average ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats

from raynas.datafiles import resolve_need

# Ground-truth column of each dataset in the NB201 accuracy table.
NB201_ACCURACY = {
    "cifar10": "cifar10_test",
    "cifar100": "cifar100_test",
    "imagenet16-120": "imagenet16_120_test",
}

# Sign of each score's correlation with accuracy, set from measurement (docs/results.md).
# +1: higher score = better architecture. Scores not listed are taken as +1.
DIRECTION: dict[str, int] = {}

INTRAIN_ABLATIONS = ("gamma", "o", "intrain_additive", "intrain")


def oriented(scores: np.ndarray, column: str) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64) * DIRECTION.get(column.split("__")[-1], 1)


def _prepare(scores: Sequence[float], accuracies: Sequence[float], nan_policy: str) -> tuple[np.ndarray, np.ndarray, int]:
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(accuracies, dtype=np.float64)
    if s.shape != a.shape:
        raise ValueError(f"scores and accuracies differ in length: {s.shape} vs {a.shape}")
    keep = ~np.isnan(a)
    s, a = s[keep], a[keep]
    bad = np.isnan(s) | np.isneginf(s)
    if nan_policy == "omit":
        s, a = s[~bad], a[~bad]
    elif nan_policy == "worst":
        s = np.where(bad, -np.inf, s)
    else:
        raise ValueError(f"nan_policy must be 'worst' or 'omit', got {nan_policy!r}")
    return s, a, int(bad.sum())


def rank_correlation(scores: Sequence[float], accuracies: Sequence[float], nan_policy: str = "worst") -> dict[str, float]:
    """Kendall τ-b and Spearman ρ of scores vs accuracies (see module doc for NaN)."""
    s, a, n_bad = _prepare(scores, accuracies, nan_policy)
    if len(s) < 3 or np.all(s == s[0]):
        return {"kendall_tau": math.nan, "spearman_rho": math.nan, "n": len(s), "n_nan": n_bad}
    rs, ra = stats.rankdata(s), stats.rankdata(a)
    return {
        "kendall_tau": float(stats.kendalltau(rs, ra).statistic),
        "spearman_rho": float(stats.spearmanr(rs, ra).statistic),
        "n": len(s),
        "n_nan": n_bad,
    }


def top_k(scores: Sequence[float], accuracies: Sequence[float], k: int = 10, nan_policy: str = "worst") -> dict[str, float]:
    """Accuracy of the best-scored cell, the best accuracy among the top-k scored cells,
    and the fraction of the true top-k cells found in the predicted top-k. The keys name
    the k asked for, so that tables of small runs have the same columns (with fewer than k
    cells, all of them are the top k)."""
    s, a, _ = _prepare(scores, accuracies, nan_policy)
    if not np.isfinite(s).any():  # no cell has a score: a top-k would be an arbitrary pick
        return {"top1_accuracy": math.nan, f"best_of_top{k}": math.nan, f"recall_top{k}": math.nan}
    kept = min(k, len(s))
    predicted = np.argsort(-s, kind="stable")[:kept]
    true = np.argsort(-a, kind="stable")[:kept]
    return {
        "top1_accuracy": float(a[predicted[0]]),
        f"best_of_top{k}": float(a[predicted].max()),
        f"recall_top{k}": len(set(predicted) & set(true)) / kept,
    }


def add_intrain_ablations(table: pa.Table, prefix: str = "") -> pa.Table:
    """Add ``intrain_additive`` = z(γ) + z(o), z-scored over the cells of the table (the
    paper's additive ablation); γ-only, o-only and multiplicative are existing columns."""
    gamma, o = f"{prefix}gamma", f"{prefix}o"
    if gamma not in table.column_names or o not in table.column_names:
        return table

    def z(values: np.ndarray) -> np.ndarray:
        finite = np.isfinite(values)
        if finite.sum() < 2:
            return np.full_like(values, np.nan)
        return (values - values[finite].mean()) / (values[finite].std() or 1.0)

    g = table.column(gamma).to_numpy(zero_copy_only=False).astype(np.float64)
    r = table.column(o).to_numpy(zero_copy_only=False).astype(np.float64)
    return table.append_column(f"{prefix}intrain_additive", pa.array(z(g) + z(r)))


def load_nb201_ground_truth(path: str | Path | None = None) -> pa.Table:
    """NB201 accuracies per cell index: ``path``, else the resolved ``nb201-accuracy`` table
    (:mod:`raynas.datafiles`: the user's folder, an imported NATS-Bench file, or the shipped copy)."""
    return pq.read_table(Path(path) if path else resolve_need("nb201-accuracy").path)


def dataset_of(results: pa.Table) -> str:
    """The one dataset a results table was scored on."""
    datasets = pc.unique(results.column("dataset")).to_pylist()
    if len(datasets) != 1:
        raise ValueError(f"results mix datasets {datasets}; select one (or pass an accuracy column)")
    return datasets[0]


def join_on_key(left: pa.Table, right: pa.Table, key: str = "index", join_type: str = "left outer",
                right_suffix: str | None = None) -> pa.Table:
    """``left`` joined with ``right`` on ``key``, ``right``'s key cast to ``left``'s type first
    (Parquet files from different writers disagree on int32 vs int64)."""
    right = right.set_column(right.column_names.index(key), key, right.column(key).cast(left.schema.field(key).type))
    return left.join(right, key, join_type=join_type, right_suffix=right_suffix)


def join_ground_truth(results: pa.Table, ground_truth: pa.Table, key: str = "index") -> pa.Table:
    """Results rows (one per cell) joined with the accuracy columns, by cell key."""
    accuracy_columns = [c for c in ground_truth.column_names if c != key and c not in results.column_names]
    return join_on_key(results, ground_truth.select([key, *accuracy_columns]), key).sort_by(key)


def correlation_table(
    results: pa.Table,
    ground_truth: pa.Table,
    score_columns: Iterable[str],
    accuracy_column: str | None = None,
    nan_policy: str = "worst",
    k: int = 10,
) -> list[dict[str, object]]:
    """One row per score column: τ, ρ, n, NaN count and top-k, against the accuracy of the
    results' dataset (or ``accuracy_column``)."""
    if accuracy_column is None:
        accuracy_column = NB201_ACCURACY[dataset_of(results)]
    joined = join_ground_truth(results, ground_truth)
    acc = joined.column(accuracy_column).to_numpy(zero_copy_only=False).astype(np.float64)
    rows = []
    for column in score_columns:
        if column not in joined.column_names:
            continue
        s = oriented(joined.column(column).to_numpy(zero_copy_only=False), column)
        rows.append({
            "score": column,
            "accuracy": accuracy_column,
            **rank_correlation(s, acc, nan_policy),
            **top_k(s, acc, k, nan_policy),
        })
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """A plain-text table for terminals and logs."""
    if not rows:
        return "(no rows)"
    headers = list(rows[0])
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


NON_SCORE_COLUMNS = {"index", "seed", "L", "gradalign_classes", "build_time_s"}


def score_columns(table: pa.Table) -> list[str]:
    """The float columns that are scores (not timings, memory or diagnostics)."""
    return [
        f.name for f in table.schema
        if pa.types.is_floating(f.type)
        and f.name.split("__")[-1] not in NON_SCORE_COLUMNS
        and not f.name.endswith(("_time_s", "_peak_mem_mb"))
    ]


def load_ground_truth(space: str, path: str | Path | None = None) -> tuple[pa.Table, dict[str, str]]:
    """(accuracy table keyed by ``index``, dataset → accuracy column) for a space."""
    if space == "nb201":
        return load_nb201_ground_truth(path), NB201_ACCURACY
    if space == "nb101":
        from raynas.spaces.nb101_truth import load_nb101_ground_truth

        return load_nb101_ground_truth(path), {"cifar10": "test_accuracy_single_run"}
    raise ValueError(f"no ground truth known for space {space!r}")


def correlation_report(results_dir: Path, nan_policy: str = "worst", ground_truth: str | Path | None = None,
                       k: int = 10) -> list[dict[str, object]]:
    """The correlation table of a results directory against its space's ground truth."""
    from raynas.results import load_results, read_run_config

    config = read_run_config(results_dir)["config"]
    results = add_intrain_ablations(load_results(results_dir))
    truth, accuracy_of = load_ground_truth(config["space"], ground_truth)
    if config["dataset"] not in accuracy_of:
        raise ValueError(f"no {config['space']} accuracies for dataset {config['dataset']!r}")
    column = accuracy_of[config["dataset"]]
    known = join_ground_truth(results.select(["index"]), truth.select(["index", column])).column(column)
    if results.num_rows and known.null_count + pc.sum(pc.is_nan(known.fill_null(0.0))).as_py() == results.num_rows:
        raise ValueError(f"none of the {results.num_rows} cells in {results_dir} has a known {config['space']} "
                         f"{config['dataset']} accuracy; score cells that do (raynas score --sample N)")
    return correlation_table(results, truth, score_columns(results), column, nan_policy, k)
