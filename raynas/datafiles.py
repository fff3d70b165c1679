"""Where raynas' benchmark data comes from: one explicit resolution order, per file.

1. ``RAYNAS_DATA_DIR`` — a folder the user points at (the official exports, larger probe
   sets, peers' scores). If the variable is set, the folder must exist.
2. The cache (``RAYNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/raynas`` or ``~/.cache/raynas``),
   under ``data/`` — what ``raynas data fetch`` and ``raynas data import`` wrote.
3. The data shipped inside the package (``raynas/data``; its README says where each
   table comes from) — enough to score and report on a fresh machine.

Nothing else is searched: no folder is found by its name near the working directory.
``raynas data status`` prints the outcome for every need.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "RAYNAS_DATA_DIR"
CACHE_ENV_VAR = "RAYNAS_CACHE_DIR"
EMBEDDED_DIR = Path(__file__).resolve().parent / "data"

ORIGIN_DATA_DIR, ORIGIN_CACHE, ORIGIN_EMBEDDED = ENV_VAR, "cache", "embedded"


@dataclass(frozen=True)
class DataNeed:
    """One file raynas reads, by its path relative to a data root (the first name found
    in a root wins; an imported full table is preferred to a shipped sample)."""

    name: str
    relatives: tuple[str, ...]
    what: str
    how_to_get: str


NEEDS: dict[str, DataNeed] = {n.name: n for n in (
    DataNeed("nb201-accuracy", ("nb201/ground_truth.parquet",),
             "NB201 test accuracy of all 15,625 cells (CIFAR-10/100, ImageNet16-120)",
             "raynas data import nats-bench FILE"),
    DataNeed("nb101-accuracy", ("nb101/accuracy.parquet", "nb101/accuracy_sample5000.parquet"),
             "NB101 CIFAR-10 test accuracy (shipped: a 5,000-cell sample)",
             "raynas data import nb101 FILE"),
    DataNeed("nb_macro-accuracy", ("nb_macro/ground_truth_cifar10.parquet", "macro/ground_truth_cifar10.parquet"),
             "NAS-Bench-Macro CIFAR-10 test accuracy (three runs) of all 6,561 cells, with params and FLOPs",
             "shipped with raynas (xiusu/NAS-Bench-Macro, data/nas-bench-macro_cifar10.json)"),
    DataNeed("darts-accuracy", ("darts/nds_accuracy.parquet", "darts/nb301_suite_zero.parquet"),
             "DARTS-space CIFAR-10 accuracy (shipped: NAS-Bench-301's surrogate for Suite-Zero's 725 genotypes)",
             "raynas data import nds DARTS.json"),
    DataNeed("tnb101_micro-accuracy", ("tnb101/micro_ground_truth.parquet",),
             "TransNAS-Bench-101 micro: each of 7 tasks' metric for all 4,096 cells",
             "shipped with raynas (automl/NASLib, naslib/data/zc_benchmarks/all_benchmarks_zen.zip)"),
    DataNeed("cifar10-probe", ("cifar/cifar10_probe.npz",), "CIFAR-10 labelled probe images",
             "raynas data fetch cifar10"),
    DataNeed("cifar100-probe", ("cifar/cifar100_probe.npz",), "CIFAR-100 labelled probe images",
             "raynas data fetch cifar100"),
)}


@dataclass(frozen=True)
class Resolved:
    path: Path
    origin: str  # RAYNAS_DATA_DIR | cache | embedded

    def sha256(self) -> str:
        return file_digest(self.path)


def cache_dir() -> Path:
    """raynas' cache folder (the NB101 cell table, fetched and imported data)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "raynas"


def fetched_dir() -> Path:
    """Where fetched and imported data is written (root 2 of the resolution order)."""
    return cache_dir() / "data"


def user_data_dir() -> Path | None:
    """``RAYNAS_DATA_DIR``, checked: a set but missing folder is an error, never skipped."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{ENV_VAR}={value!r} is not a folder; fix or unset it")
    return path


def roots() -> list[tuple[str, Path]]:
    """The data roots in resolution order, as (origin, folder)."""
    found = [(ORIGIN_DATA_DIR, d)] if (d := user_data_dir()) else []
    return [*found, (ORIGIN_CACHE, fetched_dir()), (ORIGIN_EMBEDDED, EMBEDDED_DIR)]


def resolve(relatives: str | tuple[str, ...]) -> Resolved:
    """The first of ``relatives`` present in the first root that has one."""
    names = (relatives,) if isinstance(relatives, str) else relatives
    searched = roots()
    for origin, root in searched:
        for relative in names:
            if (root / relative).is_file():
                return Resolved(root / relative, origin)
    need = next((n for n in NEEDS.values() if n.relatives == names), None)
    hint = f"; get it with `{need.how_to_get}`" if need else f", or set {ENV_VAR} to a folder holding it"
    raise FileNotFoundError(
        f"raynas data file {names[0]} not found in {', '.join(f'{o} ({r})' for o, r in searched)}{hint}")


def resolve_need(name: str) -> Resolved:
    return resolve(NEEDS[name].relatives)


def data_file(relative: str) -> Path:
    """A data file by its path under a data root (see the module doc for the order)."""
    return resolve(relative).path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (files here reach 150 MB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def status() -> list[dict[str, str]]:
    """One row per need: where it resolves (or why not), with the file's checksum."""
    rows = []
    for need in NEEDS.values():
        try:
            found = resolve_need(need.name)
            rows.append({"need": need.name, "origin": found.origin, "path": str(found.path),
                         "sha256": found.sha256()[:16], "what": need.what})
        except FileNotFoundError:
            rows.append({"need": need.name, "origin": "MISSING", "path": "-",
                         "sha256": "-", "what": f"{need.what}; {need.how_to_get}"})
    return rows
