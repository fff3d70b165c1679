"""The Ray driver: select cells, skip those already written, shard the rest over a Ray Data
actor pool (GPU actors, fractional allowed; CPU actors when the cluster has no GPU), and
report progress. Rows are committed by the actors (:mod:`raynas.distributed.actor`).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from raynas.cost import MEMORY_HEADROOM, CellCost, cell_cost
from raynas.distributed.background import RowsOnAThread, stop_dataset_execution
from raynas.distributed.progress import Progress, ProgressBoard
from raynas.lock import acquire_lock
from raynas.precision import DEFAULT_PRECISION
from raynas.results import (ResultsDir, check_or_write_run_config, clean_temporaries, drop_replaced_rows,
                            drop_superseded_error_rows)
from raynas.scoring import fusable
from raynas.spaces import SearchSpace, get_space
from raynas.spaces.base import cell_payload
from raynas.spec import ScoringSpec
from raynas.lock import Lease
from raynas.storage import Store, open_store

logger = logging.getLogger("raynas.driver")

DEFAULT_SHARD = {"cpu": 16, "cuda": 128}


@dataclass
class RunOptions:
    space: str  # a name, or an import path / entry point of a plugin space
    proxies: str | Sequence[str]
    out: str | Path  # a local folder, or s3://bucket/prefix
    dataset: str = "cifar10"
    seed: int = 0
    precision: str = DEFAULT_PRECISION  # float32 | float64 (raynas.precision)
    cells: Sequence[int] | None = None  # explicit selection (indices); None = whole space
    limit: int | None = None  # first N of the selection
    device: str = "auto"  # auto: GPU actors if the cluster has GPUs now, else CPU
    num_gpus_per_actor: float | None = None  # None: measured (raynas.distributed.packing)
    cpus_per_actor: float = 1.0
    max_actors: int | None = None
    shard_size: int | None = None
    address: str | None = None  # None: RAY_ADDRESS if set, else an embedded local Ray
    max_restarts: int = 4  # actor restarts after a crash
    max_task_retries: int = 4  # shard retries on a restarted actor
    progress_interval_s: float = 10.0
    retry_errors: bool = False  # rescore the cells whose row is an error row, replacing it
    gpu_wait_s: float = 600.0  # --device cuda on a cluster with no GPU yet: how long to wait for one
    cells_per_pass: int | None = None  # fused scoring (raynas.fused): None chooses per device; scores move by rounding only
    log: logging.Logger = field(default=logger, repr=False)

    def spec(self) -> ScoringSpec:
        """The request resolved once; the run records it and the actors build from it."""
        return ScoringSpec.resolve(self.space, self.proxies, self.dataset, self.seed, self.precision)


@dataclass
class RunSummary:
    out: str
    selected: int
    already_done: int
    scored: int
    error_rows: int  # written by this run
    device: str
    actors: int
    seconds: float
    error_rows_kept: int = 0  # error rows of earlier runs in the selection, not retried
    results: ResultsDir | None = field(default=None, repr=False)  # the directory as this run last scanned it


WHOLE_SPACE_MAX = 10_000_000  # more cells than any run could score: a space this large needs a selection


def select_cells(space_name: str | SearchSpace, cells: Sequence[int | str] | None, limit: int | None) -> list[int]:
    """The cells a run scores, as indices: ``cells`` (indices or the space's strings), else
    the whole space; the first ``limit`` of them."""
    space = get_space(space_name)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be positive, got {limit}")
    if cells is None:
        if limit is None and len(space) > WHOLE_SPACE_MAX:
            raise ValueError(f"{space.name} has {len(space):.3g} cells, too many to score whole; choose some with "
                             "--cells, --sample (cells with a known accuracy) or --limit")
        chosen = list(range(len(space) if limit is None else min(limit, len(space))))
    else:
        chosen = [space.index_of(c) for c in cells][:limit]
    if len(set(chosen)) != len(chosen):
        raise ValueError("the cell selection names some cells twice")
    if not chosen:
        raise ValueError("the cell selection is empty")
    return chosen


def _versions() -> dict[str, str]:
    import ray
    import torch

    from raynas import __version__

    return {"raynas": __version__, "torch": torch.__version__, "ray": ray.__version__,
            "python": platform.python_version()}


def is_embedded(address: str | None) -> bool:
    """True when the run starts its own local Ray: no --address and no RAY_ADDRESS."""
    return not (address or os.environ.get("RAY_ADDRESS"))


def _connect(address: str | None) -> None:
    import ray

    from raynas.distributed.quiet import init_embedded_ray, keeping_sigterm_handler

    if ray.is_initialized():
        return
    with keeping_sigterm_handler():
        if not is_embedded(address):
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            # Embedded: one logical CPU more than cores, so Ray Data's own operators never wait
            # behind the scorer actors (a 2-CPU pool otherwise can deadlock).
            init_embedded_ray((os.cpu_count() or 1) + 1)


@dataclass(frozen=True)
class ActorPlan:
    """Where a run's scoring actors go: the device, how many, and what each asks Ray for."""

    device: str  # cpu | cuda
    actors: int  # at most
    gpus_per_actor: float | None = None
    memory_bytes: int | None = None  # a CPU actor's memory request (from the cost estimate)
    cost: CellCost | None = None  # the CPU estimate per cell, when one was measured

    def for_shards(self, shards: int) -> ActorPlan:
        """No more actors than shards."""
        return replace(self, actors=max(1, min(self.actors, shards)))


def _plan_actors(opts: RunOptions, todo: Sequence[int], spec: ScoringSpec, config: dict) -> ActorPlan:
    """The actors for ``todo``, from the options, the cluster now and the cost estimate."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    device = opts.device
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
        opts.log.info("device auto: cluster has %g GPU(s) → %s actors%s", gpus, device.upper(),
                         "" if gpus else " (pass --device cuda on a cluster whose GPU workers autoscale from 0)")
    if device == "cuda":
        if not gpus:
            gpus = wait_for_gpus(opts)
        per_actor = opts.num_gpus_per_actor
        if per_actor is None:
            per_actor, reason = _measured_gpus_per_actor(opts, todo, spec, gpus, cpus, config)
            opts.log.info("GPUs per actor: %s", reason)
        fit = int(gpus / per_actor) if gpus else 0
        return ActorPlan(device, opts.max_actors or fit or 8, per_actor)
    if device != "cpu":
        raise ValueError(f"--device must be auto, cpu or cuda, got {opts.device!r}")
    fit = max(1, int(((os.cpu_count() or 1) if is_embedded(opts.address) else cpus) // opts.cpus_per_actor))
    actors = opts.max_actors or fit
    cost = cell_cost(spec)
    if opts.cells_per_pass is not None and any(fusable(spec.space, cp) for cp in spec.proxies):
        peak_mb = _measured_fused_peak_mb(opts, todo, spec, config)
        request = int(peak_mb * MEMORY_HEADROOM * 2**20)
        if cost is not None:  # the estimate's memory is the measured pass's, its time still the table's
            cost = replace(cost, memory_mb=peak_mb)
    elif cost is not None:
        request = cost.memory_request_bytes
    else:
        return ActorPlan(device, actors)
    memory, actors = _fit_memory(opts, request, actors)
    return ActorPlan(device, actors, None, memory, cost)


def _measured_fused_peak_mb(opts: RunOptions, todo: Sequence[int], spec: ScoringSpec, config: dict) -> float:
    """A CPU actor's peak memory when it fuses ``--cells-per-pass`` cells: one Ray task of an
    actor's CPUs scores that many copies of the calibration cell in one pass (the cost
    table's figures are for one cell at a time); its request is that peak with headroom."""
    import ray

    from raynas.distributed.packing import measure_cpu_peak

    cell, k = calibration_cell(spec.space, todo), opts.cells_per_pass
    opts.log.info("--cells-per-pass %d: measuring a CPU actor's memory on one pass of %d copies of cell %s", k, k, cell)
    task = ray.remote(num_cpus=opts.cpus_per_actor, max_retries=0)(measure_cpu_peak)
    try:
        peak_mb = ray.get(task.remote(config, cell, k, int(opts.cpus_per_actor)))
    except Exception as exc:  # noqa: BLE001 — any failure of the probe task has one remedy
        raise RuntimeError(f"measuring a CPU actor's memory for --cells-per-pass {k} on cell {cell} failed "
                           f"({type(exc).__name__}: {_last_line(exc)}); pass a smaller --cells-per-pass") from None
    if math.isnan(peak_mb):  # this kernel reports no peak
        raise RuntimeError(f"--cells-per-pass {k}: this system reports no peak memory (/proc/self/status VmHWM), "
                           "so a CPU actor's memory request cannot be measured; leave --cells-per-pass unset")
    opts.log.info("--cells-per-pass %d: an actor peaked at %.1f GB scoring %d copies of cell %s in one pass; "
                  "each CPU actor asks Ray for %.1f GB (×%g)", k, peak_mb / 1024, k, cell,
                  peak_mb * MEMORY_HEADROOM / 1024, MEMORY_HEADROOM)
    return peak_mb


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else ""


def _fit_memory(opts: RunOptions, request: int, actors: int) -> tuple[int | None, int]:
    """(each CPU actor's memory request, actors): the request, and on an embedded Ray no
    more actors than this machine's memory holds. A request larger than every node's
    memory would wait forever: then there is none, and a warning."""
    import ray

    largest = max((n["Resources"].get("memory", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if request > largest:
        opts.log.warning("a CPU actor may need ~%.1f GB for these cells, more than any node gives Ray (%.1f GB); "
                         "scoring without a memory request, so it may run out of memory", request / 2**30,
                         largest / 2**30)
        return None, actors
    if is_embedded(opts.address) and int(largest // request) < actors:
        actors = max(1, int(largest // request))
        opts.log.info("%d CPU actor(s): as many as this machine's memory for Ray (%.1f GB) holds at ~%.1f GB each",
                      actors, largest / 2**30, request / 2**30)
    return request, actors


def wait_for_gpus(opts: RunOptions, poll_s: float = 5.0) -> float:
    """The cluster's GPUs once it has any: a cluster whose GPU workers autoscale from zero
    may need minutes to bring one up, so say so while waiting, and give up with a clear
    message after ``opts.gpu_wait_s`` (an embedded Ray never gains one: it gives up at once)."""
    import ray

    if is_embedded(opts.address):
        raise RuntimeError("--device cuda: the embedded Ray on this machine has no GPU (Ray sees none) "
                           "and no autoscaler to add one; use --device cpu, or --address for a GPU cluster")
    start = time.monotonic()
    told = start
    while (gpus := ray.cluster_resources().get("GPU", 0.0)) == 0:
        waited = time.monotonic() - start
        if waited >= opts.gpu_wait_s:
            raise RuntimeError(f"--device cuda: no GPU joined the cluster in {opts.gpu_wait_s:.0f} s; does it have a "
                               "GPU node type (cluster.yaml available_node_types)? Use --device cpu, or raise "
                               "RunOptions.gpu_wait_s for a slow autoscaler")
        if time.monotonic() - told >= 30 or told == start:
            opts.log.warning("waiting for a GPU node (none in the cluster yet; an autoscaler may be starting one): "
                             "%.0f s of at most %.0f s", waited, opts.gpu_wait_s)
            told = time.monotonic()
        time.sleep(poll_s)
    return gpus


def check_gpus_per_actor(value: float | None) -> None:
    """A fraction in (0, 1] shares a GPU; a whole number ≥ 1 gives an actor several."""
    if value is not None and not (0 < value <= 1 or (value >= 1 and value == int(value))):
        raise ValueError(f"--num-gpus-per-actor must be in (0, 1] or a whole number, got {value:g}")


def calibration_cell(space: SearchSpace, todo: Sequence[int]) -> int | str:
    """The cell to measure an actor's GPU footprint on: the space's heaviest if it names
    one, else the first cell to score."""
    heaviest = getattr(space, "heaviest_cell", None)
    return cell_payload(space, heaviest() if callable(heaviest) else todo[0])


def _measured_gpus_per_actor(opts: RunOptions, todo: Sequence[int], spec: ScoringSpec, gpus: float, cpus: float,
                             config: dict) -> tuple[float, str]:
    import ray

    from raynas.distributed.packing import Footprint, measure_footprint, plan_packing

    cell = calibration_cell(spec.space, todo)
    task = ray.remote(num_gpus=1, num_cpus=0, max_retries=0)(measure_footprint)
    try:
        footprint = Footprint(**ray.get(task.remote(config, cell, opts.cells_per_pass)))
    except Exception as exc:  # noqa: BLE001 — any failure of the probe task has one remedy
        raise RuntimeError(f"measuring one actor's GPU memory on cell {cell} failed ({type(exc).__name__}: "
                           f"{_last_line(exc)}); pass --num-gpus-per-actor to choose the packing yourself"
                           f"{' or a smaller --cells-per-pass' if opts.cells_per_pass else ''}") from None
    return plan_packing(footprint, cpus / gpus if gpus else None)


def run_scoring(opts: RunOptions) -> RunSummary:
    """Score the selected cells into ``opts.out`` (resuming: cells already there are skipped)."""
    session = ScoringSession(opts)
    selection = select_cells(session.spec.space, opts.cells, opts.limit)  # bad input fails before any work
    with session:
        return session.score(selection)


class ScoringSession:
    """One results directory held for several scorings: its lease (with a heartbeat) and its
    run record are taken once, and each :meth:`score` skips the cells already written.
    ``persistent_actors``: the scoring actors, built on first use, serve every later
    :meth:`score` (a search's generations: each would otherwise pay the actors' start-up —
    imports, the space's tables, probe batches — again); without it each :meth:`score` runs
    a Ray Data actor pool of its own, which grows and shrinks with the cluster."""

    def __init__(self, opts: RunOptions, persistent_actors: bool = False):
        self.opts, self.persistent_actors = opts, persistent_actors
        check_gpus_per_actor(opts.num_gpus_per_actor)
        if opts.cells_per_pass is not None and opts.cells_per_pass < 1:
            raise ValueError(f"--cells-per-pass must be at least 1, got {opts.cells_per_pass}")
        self.spec = opts.spec()
        self.config = self.spec.config()
        self.out = open_store(opts.out)
        self.results = ResultsDir(self.out)  # scanned before each scoring, incrementally
        self.lease: Lease | None = None
        self._actors: list | None = None
        self._plan: ActorPlan | None = None

    def __enter__(self) -> ScoringSession:
        self.out.ensure()
        self.lease = acquire_lock(self.out)
        self.lease.start_heartbeat()
        try:
            check_or_write_run_config(self.out, self.config, _versions(), columns=self.spec.column_roles())
            if removed := clean_temporaries(self.out):
                self.opts.log.info("removed %d unfinished temporary file(s) of an interrupted run", removed)
            if self.opts.retry_errors and (healed := drop_superseded_error_rows(self.results)):
                self.opts.log.warning("dropped %d error row(s) an interrupted retry had already replaced", healed)
        except BaseException:
            self.lease.release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._kill_actors()
        self.lease.release()

    def _kill_actors(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = None

    def score(self, cells: Sequence[int], shard_size: int | None = None) -> RunSummary:
        """Score those of ``cells`` not yet in the directory (``shard_size``: cells per part).
        ``cells``: indices, as :func:`select_cells` gives them or a search draws them
        (parsed once, by whoever chose them)."""
        import time

        start = time.monotonic()
        opts, out = self.opts, self.out
        selection = list(cells)
        scan = self.results.scan()
        selected = set(selection)
        errors = scan.errors & selected
        done = scan.cells - errors if opts.retry_errors else scan.cells
        todo = [c for c in selection if c not in done]
        already = len(selection) - len(todo)
        retry = f" ({len(errors)} of them error rows, retried)" if opts.retry_errors and errors else ""
        opts.log.info("%d cells selected, %d already in %s, %d to score%s", len(selection), already, out,
                      len(todo), retry)
        kept = 0 if opts.retry_errors else len(errors)
        if kept:
            opts.log.warning("%d of the cells already there are error rows; --retry-errors rescores them", kept)
        if not todo:
            return RunSummary(str(out), len(selection), already, 0, 0, "-", 0, time.monotonic() - start, kept,
                              self.results)

        written, progress, plan = self._execute(todo, already, shard_size or opts.shard_size)
        if opts.retry_errors and errors:
            drop_replaced_rows(self.results, errors, keep=written)
        return RunSummary(str(out), len(selection), already, progress.committed, progress.committed_errors,
                          plan.device, plan.actors, time.monotonic() - start, kept, self.results)

    def _execute(self, todo: list[int], already: int, shard_size: int | None):
        """The one loop of every scoring: plan the actors (once, for a session that keeps
        them), split ``todo`` into shards, run them, count each part as it is committed.
        Returns (parts written, progress, plan)."""
        opts = self.opts
        _connect(opts.address)
        plan = self._plan or _plan_actors(opts, todo, self.spec, self.config)
        shards = [[cell_payload(self.spec.space, c) for c in shard]
                  for shard in split_into_shards(todo, plan.device, shard_size, plan.actors)]
        if self._plan is None:
            plan = plan.for_shards(len(shards))
        opts.log.info("scoring %d cells in %d shards on %d %s actor(s)", len(todo), len(shards), plan.actors,
                      plan.device.upper())
        if plan.cost is not None:
            opts.log.info(plan.cost.describe(len(todo), plan.actors))
        progress = Progress(len(todo), already, opts.progress_interval_s, estimated_rate=_estimated_rate(plan))
        written: list[str] = []
        run = self._on_own_actors if self.persistent_actors else self._on_ray_data
        with stopping_with_cause(progress, len(todo)), run(shards, plan) as (summaries, board):
            for summary in summaries:
                self.lease.check()  # another driver took the directory over: stop writing
                if summary is None:  # no shard finished within the interval: the board's count
                    if board is not None:
                        _read_board(board, progress)
                    continue
                written.append(str(summary["part"]))
                progress.commit(int(summary["cells"]), int(summary["errors"]))
        return written, progress, plan

    @contextmanager
    def _on_ray_data(self, shards: list[list[int | str]], plan: ActorPlan):
        """(shard summaries, progress board) from a Ray Data actor pool of ``plan``'s size."""
        import ray

        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from raynas.distributed.quiet import HARMLESS_ACTOR_ARGS_WARNING, dropping_stderr_lines, quiet_ray_data

        quiet_ray_data()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own line below; per-actor logs stay in Ray's logs
        ctx.execution_no_progress_timeout_s = 3600  # GPU workers may take minutes to scale up
        dataset = ray.data.from_items([{"cells": s} for s in shards], override_num_blocks=len(shards))
        # On the driver's node: a worker node that goes away must not take the board with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        board = ray.remote(num_cpus=0, scheduling_strategy=here)(ProgressBoard).remote()
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for actor restarts/retries yet; they go through
            # **ray_remote_args, which warns about a deprecation planned for 2.64.
            warnings.simplefilter("ignore", DeprecationWarning)
            summaries = _map_shards(dataset, self.opts, self.out, plan, self.config, board, self.lease.id)
        with dropping_stderr_lines(HARMLESS_ACTOR_ARGS_WARNING):
            rows = RowsOnAThread(summaries.iter_rows, self.opts.progress_interval_s)
            try:
                yield rows, board
            except BaseException:  # interrupted, or failed: nothing of the run may call Ray after it
                stop_dataset_execution(summaries)
                rows.wait_for_end()
                raise

    @contextmanager
    def _on_own_actors(self, shards: list[list[int | str]], plan: ActorPlan):
        """(shard summaries, no board) from this session's actors, started by its first call
        and kept for every later one."""
        import ray
        from ray.util import ActorPool

        from raynas.distributed.actor import ShardScorer

        opts = self.opts
        if self._actors is None:
            remote = ray.remote(ShardScorer).options(num_cpus=opts.cpus_per_actor, num_gpus=plan.gpus_per_actor or 0,
                                                     memory=plan.memory_bytes, max_restarts=opts.max_restarts,
                                                     max_task_retries=opts.max_task_retries)
            self._actors = [remote.remote(self.config, plan.device, self.out.uri, int(opts.cpus_per_actor), None,
                                          self.lease.id, opts.cells_per_pass) for _ in range(plan.actors)]
            self._plan = plan
            opts.log.info("started %d %s scoring actor(s), kept for every later call", plan.actors,
                          plan.device.upper())
        pool = ActorPool(self._actors)
        rows = RowsOnAThread(lambda: pool.map_unordered(lambda actor, shard: actor.score_shard.remote(shard), shards),
                             opts.progress_interval_s)
        try:
            yield rows, None
        except BaseException:  # the reading thread waits on the actors' shards: it ends with them
            self._kill_actors()
            rows.wait_for_end()
            raise


def _read_board(board, progress: Progress) -> None:
    """The board's counts into ``progress``; a slow or lost board is asked again next tick."""
    import ray

    try:
        progress.live(*ray.get(board.totals.remote(), timeout=10))
    except ray.exceptions.RayError:
        pass


def _estimated_rate(plan: ActorPlan) -> float | None:
    """Cells/s the cost estimate expects of ``plan``'s actors (None: no estimate)."""
    return plan.actors / plan.cost.seconds if plan.cost is not None and plan.cost.seconds > 0 else None


def split_into_shards(todo: list[int], device: str, shard_size: int | None, actors: int) -> list[list[int]]:
    """``todo`` in parts of ``shard_size`` cells, or of the device's default shrunk so that
    every actor gets work (300 cells on 8 packed GPU actors: 8 shards, not 3 of 128)."""
    size = shard_size or min(DEFAULT_SHARD[device], max(1, math.ceil(len(todo) / actors)))
    return [todo[i : i + size] for i in range(0, len(todo), size)]


@contextmanager
def stopping_with_cause(progress: Progress, total: int):
    """A worker's setup failure (which Ray wraps in several layers) stops the run with its
    cause and says that the committed parts are kept."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 — Ray wraps the cause in several layers
        cause = root_cause(exc)
        if cause is None:
            raise
        raise RuntimeError(f"the run stopped after {progress.committed} of {total} cells; "
                           f"committed parts are kept, rerun to resume. Cause: {cause}") from None


def root_cause(exc: BaseException) -> str | None:
    """The message of a :class:`~raynas.distributed.actor.WorkerSetupError` that Ray Data
    wrapped (it keeps only the remote traceback's text), or None for any other failure."""
    marker = "WorkerSetupError: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else None


def _map_shards(dataset, opts: RunOptions, out: Store, plan: ActorPlan, config: dict, board, lease_id: str):
    from ray.data import ActorPoolStrategy

    from raynas.distributed.actor import ShardScorer

    return dataset.map_batches(
        ShardScorer,
        fn_constructor_kwargs={
            "config": config, "device": plan.device, "out": out.uri,
            "threads": int(opts.cpus_per_actor), "progress": board, "lease_id": lease_id,
            "cells_per_pass": opts.cells_per_pass,
        },
        batch_size=1,
        compute=ActorPoolStrategy(min_size=1, max_size=plan.actors),
        num_cpus=opts.cpus_per_actor,
        num_gpus=plan.gpus_per_actor,
        **({"memory": plan.memory_bytes} if plan.memory_bytes else {}),
        max_restarts=opts.max_restarts,
        max_task_retries=opts.max_task_retries,
    )
