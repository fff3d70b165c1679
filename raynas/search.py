"""Proxy-driven architecture search: a proxy (or a rank combination of several) is the
fitness, as in NASWOT's sampling protocol and InTrain-NAS's evolutionary search.

Two strategies:

* ``sample`` — draw N distinct cells, score them, keep the fittest (NASWOT).
* ``evolution`` — regularized (aging) evolution (Real et al. 2019): a population of
  ``population`` random cells; each child mutates the fittest of ``sample_size`` cells
  drawn from the population, joins it, and the oldest member leaves. Children are made a
  generation at a time (``generation`` children from the same population), so that a
  generation is scored in one batch on the actor pool; with ``generation=1`` it is the
  sequential algorithm. ``budget`` counts distinct cells scored: a child already scored
  reuses its fitness and costs nothing.

* ``pool`` — the population rules of Zen-NAS' ``evolution_search.py`` (which ZiCo, AZ-NAS
  and InTrain-NAS search with), for spaces that grow from an initial structure (``mbv2``):
  while the pool has at most ten members, a child is the initial structure with one block
  mutated, then a random member with two; a child over the space's structural budget
  (``flops_max`` in the space's own count, ``max_layers``) is dropped before it is scored;
  the pool keeps the ``population`` fittest (the first of equals leaves first). Children
  are made ``generation`` at a time from the same pool.

Cells are scored by an evaluator: a scored table (lookup, for repeated studies) or the Ray
actor pool (:mod:`raynas.distributed.search_scoring`). The search is a deterministic
function of its seed and the cells' scores, so a killed search resumes by replaying it:
every cell already in its results directory is read back, not rescored, and the replay
continues from the last committed generation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

STRATEGIES = ("sample", "evolution", "pool")
POOL_SEEDING = 10  # Zen-NAS: mutate the initial structure while the pool has at most this many members
MAX_DROPPED = 100_000  # children over budget in a row before a pool search gives up
# Defaults named in docs/search.md.
DEFAULT_POPULATION, DEFAULT_SAMPLE_SIZE, DEFAULT_GENERATION = 10, 3, 10


class Evaluator:
    """Scores of cells: ``scores(cells) -> {cell: {column: value}}`` for every cell asked."""

    def scores(self, cells: Sequence[int]) -> dict[int, dict[str, float]]:
        raise NotImplementedError


class TableEvaluator(Evaluator):
    """Lookup in a scored table (a results directory or an exported file): no scoring."""

    def __init__(self, table: pa.Table, columns: Sequence[str]):
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"the scores table has no column {missing[0]!r}; it has {', '.join(table.column_names)}")
        index = table.column("index").to_numpy()
        self.rows = {int(i): {c: float(v) if v is not None else math.nan
                              for c, v in zip(columns, values)}
                     for i, *values in zip(index, *(table.column(c).to_pylist() for c in columns))}
        self.cells = np.asarray(sorted(self.rows), dtype=np.int64)

    def scores(self, cells: Sequence[int]) -> dict[int, dict[str, float]]:
        unknown = [c for c in cells if c not in self.rows]
        if unknown:
            raise ValueError(f"cell {unknown[0]} is not in the scores table ({len(self.rows)} cells); "
                             "lookup needs a table of the whole space")
        return {c: self.rows[c] for c in cells}


@dataclass(frozen=True)
class Fitness:
    """One score column (``intrain``), or an ensemble of several (``intrain+gradalign_2``,
    ``logrank:a+b``, a built-in such as ``az_nas``: :class:`raynas.ensemble.Ensemble`,
    ranked among the cells evaluated so far). Constraints make a cell infeasible (never
    chosen). NaN scores rank last."""

    columns: tuple[str, ...]
    lower_is_better: frozenset[str] = frozenset()
    params_max: float | None = None
    flops_max: float | None = None
    combine: str = "rank"

    @classmethod
    def parse(cls, text: str, lower_is_better: Sequence[str] = (), params_max: float | None = None,
              flops_max: float | None = None) -> Fitness:
        from raynas.ensemble import Ensemble

        try:
            ensemble = Ensemble.parse(text)
        except ValueError as err:
            raise ValueError(f"--fitness {text!r}: name a score column, or several joined by '+' ({err})") from None
        return cls(ensemble.members, frozenset(lower_is_better), params_max, flops_max, ensemble.combine)

    @property
    def needed_columns(self) -> tuple[str, ...]:
        extra = (("params",) if self.params_max is not None else ()) + (("flops",) if self.flops_max is not None else ())
        return tuple(dict.fromkeys(self.columns + extra))

    def feasible(self, row: dict[str, float]) -> bool:
        return ((self.params_max is None or row["params"] <= self.params_max)
                and (self.flops_max is None or row["flops"] <= self.flops_max))

    def values(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        """Fitness of each row (higher is fitter; -inf for infeasible, and for NaN of a
        single column)."""
        from raynas.ensemble import Ensemble

        if not rows:
            return np.empty(0)
        columns = {c: np.asarray([r[c] for r in rows], dtype=np.float64) for c in self.columns}
        if len(self.columns) == 1:
            (column, v), = columns.items()
            v = -v if column in self.lower_is_better else v
            fitness = np.where(np.isnan(v), -np.inf, v)
        else:
            fitness = Ensemble("fitness", self.columns, self.combine).values(columns, self.lower_is_better)
        feasible = np.asarray([self.feasible(r) for r in rows])
        return np.where(feasible, fitness, -np.inf)


@dataclass
class SearchState:
    """What a search has evaluated, in order, and the fitness of each. A single column's
    fitness is per cell and kept incrementally; a rank combination depends on every cell
    evaluated, so it is recomputed (once per generation) when cells were added."""

    fitness: Fitness
    order: list[int] = field(default_factory=list)  # distinct cells, in the order first scored
    rows: dict[int, dict[str, float]] = field(default_factory=dict)
    best_history: list[int] = field(default_factory=list)  # the best cell after each cell scored
    _values: np.ndarray = field(default_factory=lambda: np.empty(0))
    _position: dict[int, int] = field(default_factory=dict)

    def add(self, scored: dict[int, dict[str, float]], cells: Sequence[int]) -> None:
        new = [c for c in dict.fromkeys(cells) if c not in self.rows]
        for cell in new:
            self.rows[cell] = scored[cell]
            self._position[cell] = len(self.order)
            self.order.append(cell)
        if not new:
            return
        if len(self.fitness.columns) == 1:  # per-cell: extend, and a running best
            added = self.fitness.values([self.rows[c] for c in new])
            start = len(self._values)
            self._values = np.concatenate([self._values, added])
            best = self.best_history[-1] if self.best_history else None
            for k, cell in enumerate(new):
                if best is None or self._values[start + k] > self._values[self._position[best]]:
                    best = cell
                self.best_history.append(best)
        else:
            self._values = self.fitness.values([self.rows[c] for c in self.order])
            self.best_history.extend([self.best()] * len(new))

    def values(self, cells: Sequence[int]) -> np.ndarray:
        return self._values[[self._position[c] for c in cells]]

    def best(self) -> int:
        return self.order[int(np.argmax(self._values))]  # the first of equals: deterministic


def _score(evaluator: Evaluator, state: SearchState, cells: Sequence[int]) -> None:
    new = [c for c in dict.fromkeys(cells) if c not in state.rows]
    if new:
        state.add(evaluator.scores(new), new)


def sample_search(space: Any, evaluator: Evaluator, fitness: Fitness, n: int, seed: int,
                  on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
    """NASWOT's protocol: ``n`` distinct cells drawn uniformly, the fittest chosen (scored
    as one batch)."""
    if not 1 <= n <= len(space):
        raise ValueError(f"--n must be in 1..{len(space)}, got {n}")
    cells = [int(c) for c in np.random.default_rng(seed).choice(len(space), size=n, replace=False)]
    state = SearchState(fitness)
    _score(evaluator, state, cells)
    if on_generation:
        on_generation(state)
    return state


def evolution_search(space: Any, evaluator: Evaluator, fitness: Fitness, budget: int, seed: int,
                     population: int = DEFAULT_POPULATION, sample_size: int = DEFAULT_SAMPLE_SIZE,
                     generation: int = DEFAULT_GENERATION,
                     on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
    """Regularized evolution with the proxy as fitness (see the module doc)."""
    mutate = getattr(space, "mutate", None)
    if mutate is None:
        raise ValueError(f"space {space.name!r} defines no mutate(index, rng); use --strategy sample")
    if not 1 <= sample_size <= population:
        raise ValueError(f"--sample-size must be in 1..--population ({population}), got {sample_size}")
    if budget < population:
        raise ValueError(f"--budget ({budget}) must be at least --population ({population})")
    if generation < 1:
        raise ValueError(f"--generation must be at least 1, got {generation}")
    rng = np.random.default_rng(seed)
    members = [int(c) for c in rng.choice(len(space), size=population, replace=False)]
    state = SearchState(fitness)
    _score(evaluator, state, members)
    if on_generation:
        on_generation(state)
    stalled = 0
    while len(state.order) < budget:
        before = len(state.order)
        children = []
        for _ in range(min(generation, budget - len(state.order))):
            contenders = [members[i] for i in rng.choice(len(members), size=sample_size, replace=False)]
            parent = contenders[int(np.argmax(state.values(contenders)))]
            children.append(int(mutate(parent, rng)))
        _score(evaluator, state, children)
        members = (members + children)[len(children):]  # the oldest leave
        if on_generation:
            on_generation(state)
        stalled = stalled + 1 if len(state.order) == before else 0
        if stalled >= 1000:  # every child already scored, for a long time: the space is exhausted
            break
    return state


def pool_search(space: Any, evaluator: Evaluator, fitness: Fitness, budget: int, seed: int,
                population: int = 512, generation: int = DEFAULT_GENERATION, flops_max: float | None = None,
                max_layers: int | None = None,
                on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
    """Zen-NAS' population rules (see the module doc); ``budget`` counts distinct cells scored."""
    for needed in ("initial", "mutate", "structure_flops", "layers"):
        if not callable(getattr(space, needed, None)):
            raise ValueError(f"space {space.name!r} defines no {needed}(); --strategy pool needs a space that grows "
                             "from an initial structure (mbv2)")
    if population < 1 or generation < 1 or budget < 1:
        raise ValueError(f"--population, --generation and --budget must be at least 1 "
                         f"(got {population}, {generation}, {budget})")
    rng = np.random.default_rng(seed)
    initial = space.initial()
    state = SearchState(fitness)
    pool: list[int] = []
    dropped = stalled = 0
    while len(state.order) < budget:
        before = len(state.order)
        children: list[int] = []
        while len(children) < min(generation, budget - len(state.order)):
            if len(pool) <= POOL_SEEDING:
                child = space.mutate(initial, rng, replaces=1)
            else:
                child = space.mutate(pool[int(rng.integers(len(pool)))], rng, replaces=2)
            if ((max_layers is not None and space.layers(child) > max_layers)
                    or (flops_max is not None and space.structure_flops(child) > flops_max)):
                dropped += 1
                if dropped >= MAX_DROPPED:
                    raise ValueError(f"{MAX_DROPPED} children in a row were over the budget (FLOPs <= {flops_max}, "
                                     f"layers <= {max_layers}); is the initial structure itself over it?")
                continue
            dropped = 0
            children.append(child)
        _score(evaluator, state, children)
        pool.extend(children)
        if len(pool) > population:
            values = list(state.values(pool))
            while len(pool) > population:
                weakest = int(np.argmin(values))  # the first of equals, as list.index(min) picks it
                del pool[weakest], values[weakest]
        if on_generation:
            on_generation(state)
        stalled = stalled + 1 if len(state.order) == before else 0
        if stalled >= 1000:
            break
    return state


def run_search(strategy: str, space: Any, evaluator: Evaluator, fitness: Fitness, seed: int, *, n: int = 100,
               budget: int = 100, population: int = DEFAULT_POPULATION, sample_size: int = DEFAULT_SAMPLE_SIZE,
               generation: int = DEFAULT_GENERATION, flops_max: float | None = None, max_layers: int | None = None,
               on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy != "pool" and not getattr(space, "enumerable", True):
        raise ValueError(f"{space.name} has no enumeration to draw cells from: use --strategy pool")
    if strategy == "pool":
        max_layers = max_layers if max_layers is not None else getattr(space, "max_layers", None)
        return pool_search(space, evaluator, fitness, budget, seed, population, generation, flops_max, max_layers,
                           on_generation)
    if strategy == "sample":
        return sample_search(space, evaluator, fitness, n, seed, on_generation=on_generation)
    if strategy == "evolution":
        return evolution_search(space, evaluator, fitness, budget, seed, population, sample_size, generation,
                                on_generation)
    raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def history_table(state: SearchState, space: Any, accuracy: dict[int, float] | None = None) -> pa.Table:
    """One row per cell scored: its fitness and scores, and the best cell so far with its
    fitness and (where known) benchmark accuracy."""
    accuracy = accuracy or {}
    values = state.values(state.order)
    best_cells = state.best_history
    position = {c: i for i, c in enumerate(state.order)}
    columns: dict[str, Any] = {
        "step": list(range(1, len(state.order) + 1)),
        "index": state.order,
        "arch": [space.arch_str(c) for c in state.order],
        "fitness": values.tolist(),
        **{c: [state.rows[i][c] for i in state.order] for c in state.fitness.needed_columns},
        "accuracy": [accuracy.get(c, math.nan) for c in state.order],
        "best_index": best_cells,
        "best_fitness_now": [float(values[position[b]]) for b in best_cells],
        "best_accuracy": [accuracy.get(b, math.nan) for b in best_cells],
    }
    return pa.table(columns)


def write_history(history: pa.Table, path: Path) -> None:
    """The search's per-step history as Parquet (atomically), and its best-accuracy curve
    as a PNG beside it when matplotlib (the notebook extra) is installed."""
    import pyarrow.parquet as pq

    from raynas.atomic import atomic_target

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        pq.write_table(history, tmp)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the plot needs the notebook extra; the history is written
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(history.column("step").to_pylist(), history.column("best_accuracy").to_pylist())
    ax.set(xlabel="cells scored", ylabel="test accuracy of the best cell so far", title=path.stem)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    plt.close(fig)
