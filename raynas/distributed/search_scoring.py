"""A search's evaluator on the Ray actor pool: each generation's new cells are scored by one
``run_scoring`` into the search's results directory (the usual resumable layout), and read
back. A cell already in the directory — scored by an earlier generation, an earlier
(killed) run of this search, or another search sharing the directory — is read, never
rescored."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from raynas.distributed.driver import RunOptions, run_scoring
from raynas.results import load_results
from raynas.search import Evaluator


class RayEvaluator(Evaluator):
    def __init__(self, options: RunOptions, columns: Sequence[str]):
        self.options, self.columns = options, list(columns)
        self.cache: dict[int, dict[str, float]] = {}
        self.scored_here = 0  # cells this process had scored (not read back)

    def scores(self, cells: Sequence[int]) -> dict[int, dict[str, float]]:
        wanted = [c for c in dict.fromkeys(cells) if c not in self.cache]
        if wanted:
            # run_scoring skips the cells already in the directory (without starting Ray when
            # none is left); shards of an eighth of a generation spread it over the actors.
            shard = self.options.shard_size or max(1, math.ceil(len(wanted) / 8))
            summary = run_scoring(dataclasses.replace(self.options, cells=wanted, limit=None, shard_size=shard))
            self.scored_here += summary.scored
            table = load_results(self.options.out, columns=["index", *self.columns])
            missing = [c for c in self.columns if c not in table.column_names]
            if missing:
                raise ValueError(f"the results in {self.options.out} have no column {missing[0]!r}")
            for index, *values in zip(table.column("index").to_pylist(),
                                      *(table.column(c).to_pylist() for c in self.columns)):
                self.cache[int(index)] = {c: math.nan if v is None else float(v) for c, v in zip(self.columns, values)}
        return {c: self.cache[c] for c in cells}
