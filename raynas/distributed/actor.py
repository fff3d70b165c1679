"""The Ray Data UDF: an actor that scores whole shards and commits each as one Parquet part.

Each actor builds its :class:`~raynas.scoring.CellScorer` (and so its probe batches) once.
The part is written by the actor, atomically, under a name fixed by the shard's cells, so a
retried shard overwrites its own part and never duplicates rows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

logger = logging.getLogger("raynas.actor")


class WorkerSetupError(RuntimeError):
    """A scoring actor could not start; the message is the cause."""


class ShardScorer:
    """``__call__({"cells": [[...]]}) -> {"part": [...], "cells": [...], ...}`` (batch of 1)."""

    def __init__(self, config: dict[str, Any], device: str, out: str, threads: int = 1, progress: Any = None,
                 lease_id: str | None = None, cells_per_pass: int | None = None):
        """``config``: the run's recorded spec (``_raynas_run.json``), which this actor
        builds its scorer from. ``lease_id``: the driver's lease on ``out``, which this
        actor must see (else its node does not share the directory). ``cells_per_pass``:
        the scorer's (None: chosen per device); it changes no score, so no record has it."""
        self.progress = progress  # a ProgressBoard actor, told of every cell (None: nobody asks)
        # A failure here (missing data, another probe file than the driver's) is the run's,
        # not a crash: it is kept and raised by the first shard as an ordinary error, which
        # stops the run with its cause. Raised here, Ray would restart the actor four times.
        self.setup_error: str | None = None
        try:
            self._setup(config, device, out, threads, lease_id, cells_per_pass)
        except Exception as exc:  # noqa: BLE001 — reported by __call__
            self.setup_error = f"{type(exc).__name__}: {exc}"

    def _setup(self, config: dict[str, Any], device: str, out: str, threads: int, lease_id: str | None,
               cells_per_pass: int | None = None) -> None:
        import socket

        import torch

        from raynas.lock import lease_holder
        from raynas.storage import open_store

        from raynas.rows import row_schema
        from raynas.scoring import CellScorer
        from raynas.spec import ScoringSpec

        # First, before the (possibly slow) scorer is built: does this node see the directory?
        self.out = open_store(out)
        if lease_id is not None and lease_holder(self.out) != lease_id:
            raise RuntimeError(
                f"the results directory {out} is not shared with this node ({socket.gethostname()}): it does not "
                "see the driver's lock there. On a cluster, write results to object storage (--out s3://bucket/run) "
                "or to a filesystem every node mounts (NFS, EFS)")
        if device == "cuda":
            torch.backends.cudnn.benchmark = False  # every cell has new shapes
        # The actor's CPUs, not torch's default of every core: contention between actors costs ~3x.
        # The recorded spec, not the user's request strings: a plugin the worker cannot
        # import fails here, naming its module.
        spec = ScoringSpec.from_config(config)
        self.scorer = CellScorer.from_spec(spec, device=device, threads=max(1, threads), cells_per_pass=cells_per_pass,
                                           device_share=_gpu_share() if device == "cuda" else 1.0)
        own = self.scorer.config()
        if own != config:
            # E.g. a worker node resolving another probe file than the driver did.
            differs = sorted(k for k in {*own, *config} if own.get(k) != config.get(k))
            raise RuntimeError(
                "this worker would compute something else than the run records: "
                + "; ".join(f"{k}: run {config.get(k)!r}, worker {own.get(k)!r}" for k in differs))
        self.schema = row_schema(self.scorer.columns, own)
        logger.info("scorer ready on %s", self.scorer.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        """Ray Data's entry point: a batch of shards."""
        summary: dict[str, list] = {"part": [], "cells": [], "errors": [], "seconds": []}
        for cells in batch["cells"]:
            for key, value in self.score_shard(cells).items():
                summary[key].append(value)
        return summary

    def score_shard(self, cells) -> dict[str, Any]:
        """Score one shard and commit it as one part: {part, cells, errors, seconds}."""
        from raynas.results import part_name, write_part_atomic
        from raynas.rows import STATUS_ERROR, rows_to_table

        if self.setup_error is not None:
            raise WorkerSetupError(self.setup_error)
        # Indices, or structure strings for a space without an enumeration (cell_payload).
        cells = [c if isinstance(c, str) else int(c) for c in cells]
        start = time.perf_counter()
        name = part_name([self.scorer.space.index_of(c) for c in cells])
        rows, errors = [], 0
        for row in self.scorer.iter_scores(cells):
            rows.append(row)
            errors += row["status"] == STATUS_ERROR
            if self.progress is not None:
                self.progress.report.remote(name, len(rows), errors)  # fire and forget
        write_part_atomic(rows_to_table(rows, self.schema), self.out, name)
        if self.progress is not None:  # on disk now: the progress line counts it at once
            self.progress.committed.remote(name)
        logger.info("wrote %s (%d cells)", name, len(rows))
        return {"part": name, "cells": len(rows), "errors": errors, "seconds": time.perf_counter() - start}


def _gpu_share() -> float:
    """This actor's fraction of its GPU (Ray's assignment; 1 outside an actor)."""
    try:
        import ray

        return min(1.0, float(ray.get_runtime_context().get_assigned_resources().get("GPU", 1.0)))
    except Exception:  # noqa: BLE001 — not in a Ray worker: the whole GPU
        return 1.0
