"""Training-free ensembles: rank combinations of score columns over a population of cells.

An ensemble's value for a cell depends on every cell it is ranked among (a rank is a
property of the population), so it is computed after scoring, over a results directory,
an exported table or the cells a search has evaluated, never per cell by a worker.

Two combinations, both on normalised ranks r/N ∈ (0, 1] (1 = the best cell):

* ``rank``: Σ_m r_m/N — what ``raynas search --fitness a+b`` has always used;
* ``logrank``: Σ_m log(r_m/N) — AZ-NAS' aggregation (``NB201/tss_general.ipynb``), which
  punishes a cell for being poor on any one member.

Each member is oriented by its proxy's declared direction first; NaN and −inf rank below
every finite score of that member (ties share the average rank), as AZ-NAS turns NaN into
−inf per component. No accuracy is read: an ensemble is as training-free as its members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

COMBINATIONS = ("rank", "logrank")


@dataclass(frozen=True)
class Ensemble:
    """A named combination of score columns (see the module doc)."""

    name: str
    members: tuple[str, ...]
    combine: str = "rank"
    description: str = ""
    proxies: str = ""  # a built-in's: the --proxies request whose columns are its members

    def __post_init__(self) -> None:
        if self.combine not in COMBINATIONS:
            raise ValueError(f"ensemble {self.name!r}: combine must be one of {COMBINATIONS}, got {self.combine!r}")
        if not self.members or len(set(self.members)) != len(self.members):
            raise ValueError(f"ensemble {self.name!r}: members must be distinct column names, got {self.members!r}")

    @classmethod
    def parse(cls, text: str) -> Ensemble:
        """``[name=][rank:|logrank:]col+col+...``, or the name of a built-in
        (:data:`ENSEMBLES`). Without a prefix the combination is ``rank``; without a name
        the ensemble is named by its expression."""
        text = text.strip()
        if text in ENSEMBLES:
            return ENSEMBLES[text]
        if "," in text:  # "a,b" would be one ensemble named "a,b": say so rather than guess
            raise ValueError(f"ensemble {text!r}: one ensemble per request (columns join with '+'); "
                             "give each ensemble its own --ensemble / --report")
        head, eq, body = text.partition("=")
        name, body = (head.strip(), body) if eq else (text, text)
        combine, colon, columns = body.partition(":")
        combine, columns = (combine.strip(), columns) if colon else ("rank", body)
        members = tuple(c.strip() for c in columns.split("+") if c.strip())
        if not members:
            raise ValueError(f"ensemble {text!r}: name a built-in ({', '.join(ENSEMBLES)}) or write "
                             "[name=][rank:|logrank:]column+column")
        return cls(name, members, combine)

    def missing(self, columns: Iterable[str]) -> list[str]:
        have = set(columns)
        return [m for m in self.members if m not in have]

    def values(self, columns: Mapping[str, Sequence[float]], lower_is_better: Iterable[str] = ()) -> np.ndarray:
        """The ensemble's score of each cell (higher is better), from each member's column
        of scores over the same cells in the same order."""
        if missing := self.missing(columns):
            raise ValueError(f"ensemble {self.name!r} needs columns {missing}; have {sorted(columns)}")
        lower = set(lower_is_better)
        ranks = [normalised_rank(columns[m], m in lower) for m in self.members]
        if self.combine == "logrank":
            return np.sum(np.log(ranks), axis=0)
        return np.sum(ranks, axis=0)


def normalised_rank(scores: Sequence[float], lower_is_better: bool = False) -> np.ndarray:
    """r/N with r = 1 for the worst cell and N for the best; NaN and −inf (and +inf of a
    lower-is-better score) share the lowest ranks. Ties share their average rank."""
    from scipy.stats import rankdata

    v = np.asarray(scores, dtype=np.float64)
    if v.ndim != 1 or not len(v):
        raise ValueError(f"a member's scores must be a non-empty 1-D sequence, got shape {v.shape}")
    v = -v if lower_is_better else v
    v = np.where(np.isnan(v), -np.inf, v)
    return rankdata(v) / len(v)


def add_ensembles(table: "pa.Table", ensembles: Iterable[Ensemble], lower_is_better: Iterable[str] = (),
                  skip_incomplete: bool = False) -> "pa.Table":
    """``table`` with one float64 column per ensemble, ranked over the table's rows.
    ``skip_incomplete`` leaves out an ensemble whose members are not all in the table
    (the report's built-in rows); otherwise a missing member is an error."""
    import pyarrow as pa

    lower = set(lower_is_better)
    for ensemble in ensembles:
        if ensemble.name in table.column_names:
            raise ValueError(f"ensemble {ensemble.name!r}: the table already has a column of that name")
        if ensemble.missing(table.column_names):
            if skip_incomplete:
                continue
        columns = {m: table.column(m).to_numpy(zero_copy_only=False).astype(np.float64)
                   for m in ensemble.members if m in table.column_names}
        table = table.append_column(ensemble.name, pa.array(ensemble.values(columns, lower), pa.float64()))
    return table


def parse_ensembles(texts: Iterable[str]) -> list[Ensemble]:
    ensembles = [Ensemble.parse(t) for t in texts]
    names = [e.name for e in ensembles]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"ensembles named more than once: {dup}")
    return ensembles


# raynas' own: chosen on NB201 CIFAR-10 accuracies alone, among data-free columns, from every
# combination listed in docs/ensembles/ (docs/history.md, "The ensemble protocol with AZ-NAS'
# components"), then reported unchanged everywhere else.
RECOMMENDED = Ensemble(
    "recommended", ("mg__meco", "mg__meco_opt", "synflow", "az_expressivity", "az_trainability"), "logrank",
    "raynas' data-free ensemble (chosen on NB201 CIFAR-10 only): Σ log-rank of MeCo and MeCo-opt on a Gaussian "
    "input (mg=meco:probe=gaussian), synflow, and AZ-NAS' expressivity and trainability",
    "synflow;mg=meco:probe=gaussian;az_nas")

# The protocol's first choice, before AZ-NAS' components were candidates (docs/ensembles/
# nb201_cifar10_s1000_search.csv); it was `recommended` until 2026-12-05, and stays for the
# tables and figures reported under that name then.
FIRST_ROUND = Ensemble(
    "first_round", ("mg__meco", "mg__meco_opt", "o"), "logrank",
    "raynas' first data-free ensemble (recommended until 2026-12-05; chosen on NB201 CIFAR-10 only): Σ log-rank of "
    "MeCo and MeCo-opt on a Gaussian input and InTrain's o",
    "intrain;mg=meco:probe=gaussian")

# The peers' published combinations, as their official code forms them, and raynas' own.
ENSEMBLES: dict[str, Ensemble] = {e.name: e for e in (
    RECOMMENDED,
    FIRST_ROUND,
    Ensemble("az_nas", ("az_expressivity", "az_progressivity", "az_trainability", "flops"), "logrank",
             "AZ-NAS (CVPR'24): Σ log-rank of expressivity, progressivity, trainability and FLOPs", "az_nas;flops"),
    Ensemble("vkdnw_agg", ("vkdnw_single", "az_expressivity", "az_trainability", "flops", "jacob_cov"), "logrank",
             "VKDNW_agg (CVPR'25): Σ log-rank of VKDNW_single, AZ-NAS' expressivity and trainability, FLOPs and jacob_cov",
             "vkdnw;az_nas;flops;jacob_cov"),
    Ensemble("te_nas", ("te_nas_ntk", "te_nas_lr"), "rank",
             "TE-NAS (ICLR'21): the sum of the NTK condition number's and the linear-region count's ranks", "te_nas"),
)}
