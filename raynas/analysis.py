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

from raynas.results import ResultsDir
from raynas.spaces.base import GroundTruth

INTRAIN_ABLATIONS = ("gamma", "o", "intrain_additive", "intrain")
DERIVED_SCORES = ("intrain_additive",)  # added by add_intrain_ablations, higher is better


def oriented(scores: np.ndarray, lower_is_better: bool = False) -> np.ndarray:
    """Scores as "higher ranks better" (a proxy declares its direction, from measurement)."""
    values = np.asarray(scores, dtype=np.float64)
    return -values if lower_is_better else values


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
    scored = s[~np.isneginf(s)]
    # a score equal on every cell it scored ranks nothing: its τ would be only that of the
    # NaN cells ranked last (synflow is 0 on every cell of a network ending in a saturated tanh)
    if len(s) < 3 or not len(scored) or np.all(scored == scored[0]):
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
    accuracy_column: str,
    nan_policy: str = "worst",
    k: int = 10,
    lower_is_better: Iterable[str] = (),
) -> list[dict[str, object]]:
    """One row per score column: τ, ρ, n, NaN count and top-k, against ``accuracy_column``
    (columns in ``lower_is_better`` are ranked by their negation)."""
    lower = set(lower_is_better)
    joined = join_ground_truth(results, ground_truth)
    acc = joined.column(accuracy_column).to_numpy(zero_copy_only=False).astype(np.float64)
    rows = []
    for column in score_columns:
        if column not in joined.column_names:
            continue
        s = oriented(joined.column(column).to_numpy(zero_copy_only=False), column in lower)
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
    # Numbers right-aligned, text (and the first column) left-aligned, headers with their column.
    numeric = [i > 0 and all(isinstance(r[h], (int, float)) for r in rows) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) if right else v.ljust(w)  # noqa: E731
                                  for v, w, right in zip(vals, widths, numeric)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def column_roles(run: dict) -> dict[str, dict[str, str]]:
    """Each result column's role as the run recorded it (``_raynas_run.json``'s
    ``columns``), or as its proxies declare it for runs written before roles were recorded."""
    if "columns" in run:
        return run["columns"]
    from raynas.spec import ScoringSpec

    return ScoringSpec.from_config(run["config"]).column_roles()


def roles_of(results_dir: str | Path) -> dict[str, dict[str, str]]:
    """:func:`column_roles` of a results directory."""
    from raynas.results import read_run_config

    return column_roles(read_run_config(results_dir))


def score_columns(table: pa.Table, roles: dict[str, dict[str, str]]) -> list[str]:
    """The table's score columns (declared by their proxies; diagnostics, timings and
    identity columns are not), plus the derived InTrain ablation when present."""
    declared = [c for c, role in roles.items() if role.get("role") == "score"]
    derived = [c for c in table.column_names if c.split("__")[-1] in DERIVED_SCORES]
    return [c for c in table.column_names if c in declared] + derived


def lower_is_better(roles: dict[str, dict[str, str]]) -> set[str]:
    return {c for c, role in roles.items() if role.get("better") == "lower"}


def load_ground_truth(space: str, path: str | Path | None = None, dataset: str | None = None,
                      accuracy_column: str | None = None) -> GroundTruth:
    """A space's accuracies (:meth:`SearchSpace.ground_truth`), or a table the user gives
    (``path``: Parquet with an ``index`` column, or one of cells in the space's string form
    under ``arch``, and ``accuracy_column``, else a column named after ``dataset``, else
    ``accuracy``)."""
    from raynas.spaces import get_space

    space_obj = get_space(space)
    if path is None:
        provide = getattr(space_obj, "ground_truth", None)
        if provide is None:
            raise ValueError(f"space {space_obj.name!r} has no ground truth of its own; pass --ground-truth FILE")
        truth = provide()
        if accuracy_column is not None and dataset is not None:
            truth = GroundTruth(truth.table, {**truth.accuracy_of, dataset: accuracy_column})
        return truth
    table = pq.read_table(Path(path))
    if "index" not in table.column_names:
        if "arch" not in table.column_names:
            raise ValueError(f"--ground-truth {path}: needs an 'index' or an 'arch' column")
        index = [space_obj.index_of(a) for a in table.column("arch").to_pylist()]
        table = table.append_column("index", pa.array(index, pa.int64()))
    if accuracy_column is None and dataset is not None and dataset in table.column_names:
        accuracy_column = dataset
    if accuracy_column is None and "accuracy" in table.column_names:
        accuracy_column = "accuracy"
    if accuracy_column is None and space_obj.name == "nb201":
        from raynas.spaces.nb201 import ACCURACY_OF

        accuracy_column = ACCURACY_OF.get(dataset or "")
    if accuracy_column is None or accuracy_column not in table.column_names:
        raise ValueError(f"--ground-truth {path}: no accuracy column {accuracy_column or dataset or 'accuracy'!r}; "
                         f"columns: {', '.join(table.column_names)} (choose one with --accuracy-column)")
    return GroundTruth(table, {dataset or "": accuracy_column})


def report_notes(rows: Sequence[dict[str, object]], nan_policy: str = "worst", k: int = 10,
                 ensembles: Iterable[str] = ()) -> list[str]:
    """One line for each thing in a correlation table that its headers do not explain."""
    from raynas.ensemble import ENSEMBLES, parse_ensembles

    asked = {e.name: e for e in parse_ensembles(ensembles)}

    scores = [str(r["score"]) for r in rows]
    notes = []
    if any(r.get("n_nan") for r in rows):
        fate = "ranked below every scored cell" if nan_policy == "worst" else "left out (--nan-policy omit)"
        notes.append(f"n_nan: cells whose score is NaN or -inf (degenerate cells, whose output ignores the input; "
                     f"failed proxies; scores whose definition gives -inf), {fate}")
    notes.append(f"top1_accuracy: accuracy of the best-scored cell; best_of_top{k}: the best accuracy among the "
                 f"{k} best-scored; recall_top{k}: the share of the {k} most accurate cells among them")
    for score in scores:
        base = score.rpartition("__")[2]
        if base == "intrain_additive":
            notes.append(f"{score}: InTrain's additive ablation z(gamma) + z(o), derived here over these cells")
        elif base == "gradalign_1_per_param":
            notes.append(f"{score}: GradAlign-I divided by the parameter count (one of gradalign's components)")
        elif score in asked:
            notes.append(f"{score}: ensemble, the {asked[score].combine} sum of {' + '.join(asked[score].members)}")
        elif score in ENSEMBLES:
            notes.append(f"{score}: built-in ensemble, {ENSEMBLES[score].description or ENSEMBLES[score].combine}")
    return notes


def scores_and_run(source: str | Path | ResultsDir) -> tuple[pa.Table, dict]:
    """The rows and the run record of a results directory or of an exported table (whose
    record is in its metadata under ``raynas.run``; ``{}`` if it has none)."""
    import json

    from raynas.results import ResultsDir, read_run_config

    if not isinstance(source, ResultsDir):
        path = Path(source)
        if path.is_file():
            table = pq.read_table(path)
            try:
                run = json.loads((table.schema.metadata or {}).get(b"raynas.run", b"{}") or b"{}")
            except ValueError as err:
                raise ValueError(f"{path}: its raynas.run metadata is not JSON ({err})") from None
            return table, run
        source = ResultsDir(source)
    return source.load(), read_run_config(source)


def correlation_report(results_dir: str | Path | ResultsDir, nan_policy: str = "worst", ground_truth: str | Path | None = None,
                       k: int = 10, accuracy_column: str | None = None,
                       ensembles: Iterable[str] = ()) -> list[dict[str, object]]:
    """The correlation table of a results directory (or an exported table) against its
    space's ground truth, with a row per ensemble: each one asked for (its members must be
    there) and each built-in one whose members all are (:mod:`raynas.ensemble`)."""
    from raynas.ensemble import ENSEMBLES, add_ensembles, parse_ensembles

    results, run = scores_and_run(results_dir)
    if not run:
        raise ValueError(f"{results_dir}: no raynas run record (a results directory, or a table from raynas export)")
    config = run["config"]
    space = (config.get("space_source") or {}).get("import") or config["space"]
    results = add_intrain_ablations(results)
    truth = load_ground_truth(space, ground_truth, config["dataset"], accuracy_column)
    if config["dataset"] not in truth.accuracy_of:
        raise ValueError(f"no {config['space']} accuracies for dataset {config['dataset']!r}")
    column = truth.accuracy_of[config["dataset"]]
    known = join_ground_truth(results.select(["index"]), truth.table.select(["index", column])).column(column)
    if results.num_rows and known.null_count + pc.sum(pc.is_nan(known.fill_null(0.0))).as_py() == results.num_rows:
        raise ValueError(f"none of the {results.num_rows} cells in {results_dir} has a known {config['space']} "
                         f"{config['dataset']} accuracy; score cells that do (raynas score --sample N)")
    roles = column_roles(run)
    asked = parse_ensembles(ensembles)
    builtin = [e for e in ENSEMBLES.values() if e.name not in {a.name for a in asked}]
    lower = lower_is_better(roles)
    before = set(results.column_names)
    results = add_ensembles(results, asked, lower)
    results = add_ensembles(results, builtin, lower, skip_incomplete=True)
    combined = [c for c in results.column_names if c not in before]
    return correlation_table(results, truth.table, [*score_columns(results, roles), *combined], column, nan_policy,
                             k, lower)


def accuracy_by_cell(space, dataset: str) -> dict[int, float]:
    """The benchmark's test accuracy per cell on ``dataset`` where the space has one (else
    empty: a plugin space without ground truth, or NB101 on CIFAR-100)."""
    provide = getattr(space, "ground_truth", None)
    truth = provide() if provide is not None else None
    return truth.by_cell(dataset) if truth is not None and dataset in truth.accuracy_of else {}
