"""``raynas`` command line: ``info``, ``score``, ``report``, ``check``, ``data``.

    raynas info nb201
    raynas score nb201 --proxies intrain,gradalign --out results/nb201 --limit 48
    raynas report results/nb201
    raynas check results/nb201 --quarantine  # move foreign or broken files aside
    raynas data status                   # where each data file comes from
    raynas data fetch cifar10            # the full training set as probe images
    raynas data import nats-bench FILE   # the official benchmark's accuracies
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from raynas.datasets import DATASETS
from raynas.precision import PRECISIONS

if TYPE_CHECKING:
    from raynas.distributed.driver import RunOptions
    from raynas.results import ResultsDir

EMBEDDED_SAMPLE = 48  # cells scored by default on an embedded (laptop) Ray


def parse_cells(text: str) -> list[int | str]:
    """``"0:1000"`` (half-open range), ``"3,17,42"``, arch strings or NB101 hashes, a mix
    ``"0:10,99"``, or ``"@FILE"``: one cell per line (index, arch string or hash)."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise ValueError(f"--cells {text}: no such file")
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [int(line) if line.lstrip("-").isdigit() else line for line in lines if line and not line.startswith("#")]
    cells: list[int | str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if ":" not in part:
            cells.append(int(part) if part.lstrip("-").isdigit() else part)  # else an arch string or hash
            continue
        try:
            lo, hi = (int(b) for b in part.split(":"))
        except ValueError:
            raise ValueError(f"--cells: cannot read {part!r}; use START:STOP, indices, arch strings or @FILE") from None
        if hi <= lo:
            raise ValueError(f"--cells: {part!r} selects nothing (use START:STOP with STOP > START)")
        cells.extend(range(lo, hi))
    return cells


def sample_with_accuracy(space: str, dataset: str, n: int, seed: int) -> list[int]:
    """``n`` cells drawn (seeded) from those with a known accuracy on ``dataset``, sorted:
    a small run whose report means something."""
    import numpy as np

    from raynas.analysis import load_ground_truth

    truth = load_ground_truth(space)
    if dataset not in truth.accuracy_of:
        raise ValueError(f"--sample: no {space} accuracies for dataset {dataset!r}")
    known = truth.table.filter(truth.table.column(truth.accuracy_of[dataset]).is_valid()).column("index").to_numpy()
    if not 0 < n <= len(known):
        raise ValueError(f"--sample must be in 1..{len(known)} ({space} cells with a {dataset} accuracy), got {n}")
    return sorted(int(c) for c in np.random.default_rng(seed).choice(known, n, replace=False))


def cmd_info(args: argparse.Namespace) -> int:
    from raynas.plugins import PROXY_GROUP, SPACE_GROUP, entry_points
    from raynas.proxies.registry import PROXIES
    from raynas.spaces import get_space

    space = get_space(args.space)
    size = (f"{len(space):,} cells" if getattr(space, "enumerable", True)
            else "cells are structure strings (no enumeration: give them with --cells @FILE, or search)")
    print(f"space {space.name}: {size}; ground truth: "
          f"{'yes' if hasattr(space, 'ground_truth') else 'no (raynas report --ground-truth FILE)'}")
    print(f"example cell: {space.example()}")
    known = list(space.ground_truth().accuracy_of) if hasattr(space, "ground_truth") else []
    own = getattr(space, "datasets", None)
    usable = own or [name for name, info in DATASETS.items() if info.space is None]
    print("datasets to score on: " + ", ".join(usable)
          + (f"; accuracies (for raynas report) on: {', '.join(known)}" if known else ""))
    print("\nproxies ('all' means these built-ins; plugins are asked for by name or import path):")
    for proxy in PROXIES.values():
        print("  " + _describe_proxy(proxy))
    for group, what in ((PROXY_GROUP, "proxy"), (SPACE_GROUP, "space")):
        for name, point in sorted(entry_points(group).items()):
            provider = f"{point.dist.name} {point.dist.version}" if point.dist else "?"
            print(f"plugin {what} {name} = {point.value} ({provider})")
    return 0


def _describe_proxy(proxy) -> str:
    probe = proxy.probe(proxy.options_cls())
    data = {"real": "real images", "gaussian": "Gaussian batch", "ones": "all-ones input", "none": "no data"}[probe.kind]
    diagnostics = f"; diagnostics {', '.join(proxy.diagnostics)}" if proxy.diagnostics else ""
    what = f" — {proxy.description}" if proxy.description else ""
    return (f"{proxy.name}{what}: headline {proxy.headline}; scores {', '.join(proxy.scores)} ({'higher' if proxy.higher_is_better else 'lower'} "
            f"is better){diagnostics}; {data}; BN {proxy.bn_mode}"
            f"{'; per-sample gradients' if proxy.per_sample_grads else ''}")


def cmd_score(args: argparse.Namespace) -> int:
    from raynas.distributed.driver import is_embedded, run_scoring

    if args.cells and args.sample is not None:
        raise ValueError("--cells and --sample choose cells two ways; give one")
    cells = parse_cells(args.cells) if args.cells else None
    if args.sample is not None:
        cells = sample_with_accuracy(args.space, args.dataset, args.sample, args.sample_seed)
    limit = args.limit
    if is_embedded(args.address) and cells is None and limit is None and not args.all:
        limit = EMBEDDED_SAMPLE
        logging.getLogger("raynas").warning(
            "embedded Ray (no --address): scoring the first %d cells; pass --all for the whole space", limit)
    summary = run_scoring(_run_options(
        args, proxies=args.proxies, seed=args.seed, precision=args.precision, cells=cells, limit=limit,
        num_gpus_per_actor=args.num_gpus_per_actor, cpus_per_actor=args.cpus_per_actor, shard_size=args.shard_size,
        retry_errors=args.retry_errors))
    rate = summary.scored / summary.seconds if summary.seconds else 0.0
    kept = (f"; {summary.error_rows_kept} earlier error rows kept, --retry-errors rescores them"
            if summary.error_rows_kept else "")
    print(f"scored {summary.scored} cells ({summary.already_done} already done, {summary.error_rows} error rows{kept}) "
          f"in {summary.seconds:.1f} s = {rate:.2f} cells/s on {summary.actors} {summary.device} actor(s) → {summary.out}")
    if args.report:
        print_report(summary.results or args.out)  # the run's own directory object: only new parts are read
    return 0


def _run_options(args: argparse.Namespace, **specific) -> RunOptions:
    """The run options of ``score`` and ``search --out`` from their shared scoring flags."""
    from raynas.distributed.driver import RunOptions

    return RunOptions(space=args.space, out=args.out, dataset=args.dataset, device=args.device,
                      max_actors=args.max_actors, address=args.address, progress_interval_s=args.progress_interval,
                      cells_per_pass=args.cells_per_pass, **specific)


def cmd_report(args: argparse.Namespace) -> int:
    print_report(args.results, nan_policy=args.nan_policy, ground_truth=args.ground_truth, k=args.k,
                 accuracy_column=args.accuracy_column, ensembles=args.ensemble)
    return 0


def print_report(results: str | ResultsDir, nan_policy: str = "worst", ground_truth: str | None = None, k: int = 10,
                 accuracy_column: str | None = None, ensembles: Sequence[str] = ()) -> None:
    """The correlation table of a results directory or an exported table, with its notes."""
    from raynas.analysis import correlation_report, format_table, report_notes
    from raynas.results import ResultsDir

    # A directory is read through one object (its scan, once): the run's own when it has one.
    source = results if isinstance(results, ResultsDir) or Path(results).is_file() else ResultsDir(results)
    rows = correlation_report(source, nan_policy=nan_policy, ground_truth=ground_truth, k=k,
                              accuracy_column=accuracy_column, ensembles=list(ensembles))
    if isinstance(source, ResultsDir):
        print(_scan_summary(source.scan()))
    print(format_table(rows))
    for note in report_notes(rows, nan_policy, k, list(ensembles)):
        print(f"  {note}")


def _scan_summary(scan) -> str:
    cells = len(scan.cells)
    skipped = f"; skipped {len(scan.rejected)} file(s) (raynas check lists them)" if scan.rejected else ""
    twice = f"; {len(scan.duplicates)} cell(s) found in two parts, read once" if scan.duplicates else ""
    errors = f", {len(scan.errors)} of them error rows (score --retry-errors rescores them)" if scan.errors else ""
    return f"{cells} cells from {len(scan.accepted)} part(s){errors}{skipped}{twice}"


def cmd_check(args: argparse.Namespace) -> int:
    from raynas.results import RUN_FILE, ResultsDir, quarantine

    results = ResultsDir(args.results)
    out = results.store
    if not out.entries():
        raise ValueError(f"{out} is empty or not a directory")
    if results.run_record() is None:
        raise ValueError(f"{out} is not a raynas results directory (no {RUN_FILE}); `raynas score --out` makes one")
    scan = results.scan()
    print(_scan_summary(scan))
    for path, why in scan.rejected:
        print(f"  {path.name}: {why}")
    for cell, parts in list(scan.duplicates.items())[:20]:
        print(f"  cell {cell} in {', '.join(p.name for p in parts)} (the first is read)")
    if args.quarantine and scan.rejected:
        moved = quarantine(out, scan)
        print(f"moved {len(moved)} file(s) to {moved[0].parent}; nothing was deleted")
        return 0
    return 1 if scan.rejected or scan.duplicates else 0


def cmd_export(args: argparse.Namespace) -> int:
    from raynas.export import export_results

    done = export_results(args.results, args.file, require_complete=args.complete,
                          drop_columns=tuple(args.drop or ()))
    whole = "the whole space" if done.complete else f"{done.cells} of {done.space_size} cells"
    print(f"exported {whole} ({done.error_rows} error rows), each once → {done.path} "
          f"({done.path.stat().st_size / 1e6:.1f} MB)")
    return 0


def quantity(text: str) -> float:
    """A count with an optional K/M/G suffix: ``450M``, ``1G``, ``3.5e6``."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text.strip()[-1:].upper(), 1.0)
    number = text.strip()[:-1] if scale != 1.0 else text.strip()
    try:
        return float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a count (e.g. 450M, 1G, 3.5e6)") from None


def cmd_search(args: argparse.Namespace) -> int:
    import dataclasses

    from raynas.analysis import accuracy_by_cell, lower_is_better
    from raynas.search import Fitness, TableEvaluator, history_table, run_search, write_history
    from raynas.spaces import get_space

    space = get_space(args.space)
    # A pool search applies the FLOPs budget to structures, in the space's own count, before
    # scoring; the other strategies to the scored flops column.
    structural = args.strategy == "pool"
    fitness = Fitness.parse(args.fitness, params_max=args.params_max, flops_max=None if structural else args.flops_max)
    if args.scores and args.out:
        raise ValueError("--scores (look scores up) and --out (score as it goes) are two ways; give one")
    if not args.scores and not args.out:
        raise ValueError("give --out DIR to score cells as the search goes, or --scores DIR|FILE to look them up")
    if args.scores:
        table, roles = _scores_table(args.scores)
        # Fine to replay a search on its own cells; a new one may leave them.
        if getattr(space, "enumerable", True) and table.num_rows < len(space):
            logging.getLogger("raynas").warning(
                "--scores %s holds %d of %s's %d cells: the search stops if it draws a cell outside them "
                "(--out scores as it goes)", args.scores, table.num_rows, space.name, len(space))
        evaluator = TableEvaluator(table, fitness.needed_columns)
        scoring = contextlib.nullcontext()
    else:
        evaluator, roles = _ray_evaluator(args, fitness)
        scoring = evaluator.session  # scoring as it goes: one lease and one set of actors for the search
    # Directions as the proxies declare them.
    fitness = dataclasses.replace(fitness, lower_is_better=frozenset(lower_is_better(roles)))
    with scoring:
        state = run_search(args.strategy, space, evaluator, fitness, args.seed, n=args.n, budget=args.budget,
                           population=args.population, sample_size=args.sample_size, generation=args.generation,
                           flops_max=args.flops_max if structural else None, max_layers=args.max_layers)
    accuracy = accuracy_by_cell(space, args.dataset)
    best = state.best()
    history = history_table(state, space, accuracy)
    value = float(state.values([best])[0])
    known = f"{accuracy[best]:.2f}" if best in accuracy else "unknown"
    print(f"chosen cell {best}: {space.arch_str(best)}")
    print(f"fitness ({args.fitness}) {value:.6g}; {args.dataset} test accuracy {known}; "
          f"{len(state.order)} cells scored")
    base = Path(args.history) if args.history else (
        Path(args.out) / "_search" / f"{args.strategy}-{args.fitness}-seed{args.seed}.parquet" if args.out else None)
    if base is not None:
        write_history(history, base)
        print(f"history → {base}" + (f", plot → {base.with_suffix('.png')}" if base.with_suffix(".png").exists() else ""))
    return 0


def _scores_table(source: str):
    from raynas.analysis import column_roles, scores_and_run

    table, run = scores_and_run(source)
    return table, (column_roles(run) if run else {})


def _ray_evaluator(args: argparse.Namespace, fitness):
    from raynas.distributed.driver import ScoringSession
    from raynas.distributed.search_scoring import RayEvaluator
    from raynas.proxies.registry import proxies_giving

    # Default: the proxies whose columns the fitness and constraints read.
    proxies = args.proxies or ";".join(proxies_giving(fitness.needed_columns, where="--fitness"))
    session = ScoringSession(_run_options(args, proxies=proxies, seed=args.score_seed), persistent_actors=True)
    return RayEvaluator(session, fitness.needed_columns), session.spec.column_roles()


def cmd_data_status(args: argparse.Namespace) -> int:
    from raynas.analysis import format_table
    from raynas.datafiles import CACHE_ENV_VAR, ENV_VAR, fetched_dir, status

    print(f"resolution order: {ENV_VAR} → cache ({fetched_dir()}, {CACHE_ENV_VAR}) → embedded (shipped with raynas)")
    print(format_table(status()))
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from raynas.datafiles import file_digest
    from raynas.fetch import fetch

    path = fetch(args.dataset, source=args.source, base_url=args.base_url, progress=not args.quiet)
    print(f"{args.dataset} probe images → {path} (sha256 {file_digest(path)[:16]})")
    return 0


def cmd_data_import(args: argparse.Namespace) -> int:
    from raynas.benchmark_import import import_nats_bench, import_nb101, import_nds

    path = {"nats-bench": import_nats_bench, "nb101": import_nb101, "nds": import_nds}[args.benchmark](args.file)
    print(f"{args.benchmark} accuracies → {path}")
    return 0


def _add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``score`` and ``search`` share: what to score on, and where (read by
    :func:`_run_options`)."""
    parser.add_argument("--dataset", choices=sorted(DATASETS),
                        help="default: cifar10, or the space's first task (tnb101_micro: class_scene; mbv2: imagenet)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-actors", type=int)
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded)")
    parser.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--cells-per-pass", type=int, help="score this many cells in one fused pass where a proxy "
                        "has a fused path (NB201 InTrain, GradAlign, grad_norm, snip; default: chosen per device); scores "
                        "move only as another convolution kernel would move them")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="raynas", description="Score NAS search spaces with zero-cost proxies on Ray.")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="a space's size and example, every proxy and installed plugin")
    info.add_argument("space", help="nb201, nb101, a plugin's name or an import path")
    info.set_defaults(func=cmd_info)

    score = sub.add_parser("score", help="score cells of a space into a resumable Parquet directory")
    score.add_argument("space", help="nb201, nb101, a plugin's name or an import path (my_pkg.spaces.SPACE)")
    score.add_argument("--proxies", default="intrain,gradalign,params",
                       help="names or import paths (my_pkg.zc.PROXY), or 'label=name:opt=v,opt=v', separated by "
                            "';'; 'all' is every built-in, 'baselines' the peers' eleven, 'field' the newer six "
                            "(default: %(default)s)")
    score.add_argument("--out", required=True, help="results directory (rerun the same command to resume)")
    _add_scoring_flags(score)
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--precision", default="float32", choices=PRECISIONS,
                       help="arithmetic of networks and probes: float64 agrees across thread counts (and has "
                            "one CPU kernel) to ~1e-14 at ~4x the CPU time (default: %(default)s)")
    score.add_argument("--cells", help="START:STOP, comma-separated indices, arch strings or NB101 hashes, or @FILE "
                                       "(one per line)")
    score.add_argument("--sample", type=int, help="N cells drawn from those with a known accuracy on --dataset")
    score.add_argument("--sample-seed", type=int, default=0, help="seed of the --sample draw (default: %(default)s)")
    score.add_argument("--limit", type=int, help="only the first N selected cells")
    score.add_argument("--all", action="store_true", help="the whole space even on an embedded Ray")
    score.add_argument("--num-gpus-per-actor", type=float,
                       help="fractions share a GPU, e.g. 0.25 (default with --device cuda: measured — one actor's "
                            "GPU memory on the space's heaviest cell against the GPU's size)")
    score.add_argument("--cpus-per-actor", type=float, default=1.0)
    score.add_argument("--shard-size", type=int,
                       help="cells per task and per Parquet part (default: 16 on CPU, 128 on GPU, fewer when "
                            "that would leave actors idle)")
    score.add_argument("--retry-errors", action="store_true",
                       help="rescore the selected cells whose row is an error row (the row is replaced)")
    score.add_argument("--report", action="store_true", help="print the correlation table afterwards")
    score.set_defaults(func=cmd_score)

    report = sub.add_parser("report", help="rank correlation of a results directory (or an exported table) against ground truth")
    report.add_argument("results")
    report.add_argument("--nan-policy", default="worst", choices=["worst", "omit"],
                        help="cells without a score (degenerate cells, failed proxies): rank them below every "
                             "scored cell (worst, default: no search would pick them) or leave them out (omit)")
    report.add_argument("--ground-truth", help="accuracy table (Parquet with 'index' or 'arch', and an accuracy "
                                               "column) instead of the space's own")
    report.add_argument("--accuracy-column", help="its accuracy column (default: one named after the dataset, "
                                                  "else 'accuracy')")
    report.add_argument("-k", type=int, default=10, help="k of the top-k columns")
    report.add_argument("--ensemble", action="append", default=[], metavar="[NAME=][rank:|logrank:]A+B",
                        help="a row for this combination of score columns (repeatable); built-in ensembles "
                             "(az_nas) get a row whenever their columns are there")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="a results directory as one index-sorted Parquet file, checked exactly-once")
    export.add_argument("results")
    export.add_argument("file")
    export.add_argument("--complete", action="store_true", help="refuse unless every cell of the space is there")
    export.add_argument("--drop", action="append", help="a column to leave out (repeatable), e.g. timings")
    export.set_defaults(func=cmd_export)

    search = sub.add_parser("search", help="proxy-driven search: sample N cells, or regularized evolution")
    search.add_argument("space", help="nb201, nb101, a plugin's name or an import path")
    search.add_argument("--strategy", choices=["sample", "evolution", "pool"], default="evolution",
                        help="pool: Zen-NAS' population rules, for spaces grown from a structure (mbv2)")
    search.add_argument("--fitness", default="intrain",
                        help="a score column, or several joined by '+' for a rank combination (default: %(default)s)")
    search.add_argument("--n", type=int, default=100, help="sample: cells drawn (default: %(default)s)")
    search.add_argument("--budget", type=int, default=100, help="evolution: cells scored (default: %(default)s)")
    search.add_argument("--population", type=int, default=10, help="evolution: population (default: %(default)s)")
    search.add_argument("--sample-size", type=int, default=3, help="evolution: tournament size (default: %(default)s)")
    search.add_argument("--generation", type=int, default=10,
                        help="evolution: children scored together, one Ray batch (default: %(default)s)")
    search.add_argument("--seed", type=int, default=0, help="the search's seed (default: %(default)s)")
    search.add_argument("--params-max", type=quantity, help="constraint: at most this many parameters (3.5M)")
    search.add_argument("--flops-max", type=quantity, help="constraint: at most this many FLOPs (MACs; pool: the "
                        "space's own count of each structure, e.g. 450M for mbv2)")
    search.add_argument("--max-layers", type=int, help="pool: at most this many layers (default: the space's, 14 "
                        "for mbv2)")
    _add_scoring_flags(search)
    search.add_argument("--scores", help="look fitness up in a results directory or exported file")
    search.add_argument("--out", help="score cells as the search goes, into this resumable results directory")
    search.add_argument("--proxies", help="what --out scores (default: the proxies of the fitness columns)")
    search.add_argument("--score-seed", type=int, default=0, help="the scoring seed of --out (default: %(default)s)")
    search.add_argument("--history", help="per-step history Parquet (default: OUT/_search/...; a .png plot beside it)")
    search.set_defaults(func=cmd_search)

    check = sub.add_parser("check", help="list files of a results directory that readers skip, and why")
    check.add_argument("results")
    check.add_argument("--quarantine", action="store_true",
                       help="move those files into RESULTS/_quarantine/ (nothing is deleted)")
    check.set_defaults(func=cmd_check)

    data = sub.add_parser("data", help="the benchmark data raynas reads: status, fetch, import")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_sub.add_parser("status", help="where each data file resolves, with its checksum").set_defaults(
        func=cmd_data_status)
    fetch = data_sub.add_parser("fetch", help="download a full CIFAR training set as probe images")
    fetch.add_argument("dataset", choices=["cifar10", "cifar100"])
    fetch.add_argument("--from", dest="source", help="a local copy of the official archive, or its extracted folder")
    fetch.add_argument("--base-url", help="where the official archives are (default: RAYNAS_CIFAR_URL, else the "
                                          "dataset's home page)")
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=cmd_data_fetch)
    imp = data_sub.add_parser("import", help="an official benchmark file as raynas' accuracy table")
    imp.add_argument("benchmark", choices=["nats-bench", "nb101", "nds"])
    imp.add_argument("file", help="NATS-tss-v1_0-3ffb9-simple (nats-bench), nasbench_only108.tfrecord (nb101) or "
                                  "an NDS record file of the DARTS space, e.g. DARTS.json (nds)")
    imp.set_defaults(func=cmd_data_import)
    return ap


def _interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, a job scheduler, a container stopping) ends a run as Ctrl-C does:
    the committed cells are reported and the embedded Ray is shut down on the way out.
    Python's default would end the process at once and leave Ray's agents running. Only
    where nobody else handles SIGTERM, and only in the main thread."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("raynas").setLevel(logging.INFO)  # raynas' own notices; others' only from WARNING
    # raynas connects to Ray itself, once (raynas.distributed.driver._connect). Without this, a
    # thread still iterating a run's results after an interrupted run's shutdown would start
    # a second Ray by Ray's auto-init, which nobody would shut down.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    _interrupt_on_sigterm()
    try:
        if hasattr(args, "dataset") and args.dataset is None and hasattr(args, "space"):
            from raynas.spec import default_dataset

            args.dataset = default_dataset(args.space)
        return args.func(args)
    except KeyboardInterrupt:
        from raynas.distributed.quiet import silence_ray_data_console

        silence_ray_data_console()
        _shutdown_embedded_ray()
        print(f"raynas: interrupted{_committed_note(args)}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        if args.verbose:
            raise
        print(f"raynas: error: {exc}", file=sys.stderr)
        return 2


def _shutdown_embedded_ray() -> None:
    """An interrupted run's embedded Ray goes down with it (its raylet and agents too)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        from raynas.distributed.driver import is_embedded

        if is_embedded(None):
            ray.shutdown()


def _committed_note(args: argparse.Namespace) -> str:
    """For an interrupted score: how many cells its directory holds, and how to go on."""
    if args.command != "score":
        return ""
    from raynas.results import scored_cells

    try:
        done = len(scored_cells(args.out))
    except OSError:
        return ""
    return f": {done} cells committed in {args.out}; rerun the same command to resume"


def run_job(space: str, argv: Sequence[str]) -> int:
    """Entry of ``jobs/score_<space>.py``: ``raynas score SPACE --report`` with a default --out."""
    args = list(argv)
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", f"results/{space}"]
    return main(["score", space, "--report", *args])


if __name__ == "__main__":
    sys.exit(main())
