"""A search's evaluator on Ray: one :class:`~raynas.distributed.driver.ScoringSession` for the
whole search — one lease on the results directory and one set of scoring actors, started by
the first generation and kept for the others. Each generation's new cells are scored into
the search's directory (the usual resumable layout) and read back; a cell already there —
scored by an earlier generation, an earlier (killed) run of this search, or another search
sharing the directory — is read, never rescored."""

from __future__ import annotations

import math
from collections.abc import Sequence

from raynas.distributed.driver import ScoringSession
from raynas.search import Evaluator


class RayEvaluator(Evaluator):
    def __init__(self, session: ScoringSession, columns: Sequence[str]):
        self.session, self.columns = session, list(columns)
        self.cache: dict[int, dict[str, float]] = {}
        self.scored_here = 0  # cells this process had scored (not read back)

    def scores(self, cells: Sequence[int]) -> dict[int, dict[str, float]]:
        wanted = [c for c in dict.fromkeys(cells) if c not in self.cache]
        if wanted:
            # Shards of an eighth of a generation spread it over the actors.
            shard = self.session.opts.shard_size or max(1, math.ceil(len(wanted) / 8))
            summary = self.session.score(wanted, shard_size=shard)
            self.scored_here += summary.scored
            table = self.session.results.load(columns=["index", *self.columns])  # only new parts are read
            missing = [c for c in self.columns if c not in table.column_names]
            if missing:
                raise ValueError(f"the results in {self.session.out} have no column {missing[0]!r}")
            for index, *values in zip(table.column("index").to_pylist(),
                                      *(table.column(c).to_pylist() for c in self.columns)):
                self.cache[int(index)] = {c: math.nan if v is None else float(v) for c, v in zip(self.columns, values)}
        return {c: self.cache[c] for c in cells}
