"""Issue 23, item 4: a run says what it will cost before it starts (from measured per-cell
figures), its CPU actors ask Ray for the memory a cell needs (so Ray neither over-packs a
node nor warns mid-run), Ray's warnings reach the console as one line, once, and the
progress line before the first cell says that cells are under way, with an estimated ETA."""

import io
import json
import logging
from importlib import resources

import pytest

from raynas.cost import RAY_WORKER_MB, cell_cost
from raynas.distributed.progress import Progress
from raynas.proxies.registry import PROXIES
from raynas.spec import ScoringSpec


def shipped_table() -> dict:
    return json.loads(resources.files("raynas").joinpath("data/cell_costs.json").read_text())


def test_every_built_in_proxy_has_a_measured_nb201_cost():
    # A proxy added without running benchmarks/cell_costs.py would run without an estimate.
    assert set(shipped_table()["spaces"]["nb201"]["proxies"]) == set(PROXIES)


def test_the_estimate_sums_the_proxies_and_takes_the_largest_peak():
    table = shipped_table()["spaces"]["nb201"]
    cost = cell_cost(ScoringSpec.resolve("nb201", "intrain;gradalign;params"))
    figures = [table["proxies"][p] for p in ("intrain", "gradalign", "params")]
    assert cost.seconds == pytest.approx(sum(f["seconds"] for f in figures))
    assert cost.memory_mb == pytest.approx(table["base_mb"] + RAY_WORKER_MB + max(f["peak_mb"] for f in figures))
    assert cost.memory_request_bytes == int(cost.memory_mb * 1.25 * 2**20)
    assert cost.unmeasured == () and not cost.other_options
    assert "default options" not in cost.describe(10, 1)
    # Labelled variants of one proxy count once (same name, same measured figure).
    twice = cell_cost(ScoringSpec.resolve("nb201", "a=intrain:resolution=16;intrain"))
    assert twice.seconds == pytest.approx(table["proxies"]["intrain"]["seconds"])
    assert twice.other_options and "measured at default options, which these proxies change" in twice.describe(10, 1)


def test_nb101_costs_what_was_measured_and_far_more_than_nb201():
    request = "intrain;gradalign;params"  # the README's NB101 example
    nb101, nb201 = (cell_cost(ScoringSpec.resolve(s, request)) for s in ("nb101", "nb201"))
    assert nb101.seconds > 5 * nb201.seconds and nb101.memory_mb > nb201.memory_mb  # measured: ~10x, 2.6x
    line = nb101.describe(cells=200, actors=2)
    assert line.startswith("estimated cost: ~") and "for 200 cell(s) on 2 actor(s)" in line
    assert "cell_costs.py --space nb101" in line  # where the figures come from
    total_s = nb101.seconds * 100  # 200 cells, 2 actors: 100 cells each
    assert (f"~{total_s / 60:.0f} min for 200" if total_s < 7200 else f"~{total_s / 3600:.1f} h for 200") in line


def test_float64_costs_more_and_unmeasured_proxies_are_named():
    f32 = cell_cost(ScoringSpec.resolve("nb201", "intrain"))
    f64 = cell_cost(ScoringSpec.resolve("nb201", "intrain", precision="float64"))
    assert f64.seconds == pytest.approx(4 * f32.seconds) and f64.memory_mb > f32.memory_mb
    assert cell_cost(ScoringSpec.resolve("nb101", "te_nas")) is None  # nothing measured: no made-up figure
    mixed = cell_cost(ScoringSpec.resolve("nb101", "intrain;te_nas"))
    assert mixed.unmeasured == ("te_nas",) and "no figure for te_nas" in mixed.describe(10, 1)


def test_progress_before_the_first_cell_says_cells_are_under_way():
    stream = io.StringIO()
    progress = Progress(total=10, interval_s=0.0, stream=stream, estimated_rate=0.5)
    progress.live(0, 0)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[raynas] 0/10 cells (0.0%), 0 committed, first cells under way for 0:00:0")
    assert "ETA ~0:00:1" in line and "(estimated)" in line and "cells/s" not in line
    progress.live(1, 0)
    assert "cells/s, ETA" in stream.getvalue().splitlines()[-1]  # measured from here on


def test_progress_that_does_not_move_prints_once_a_minute_at_most():
    stream = io.StringIO()
    progress = Progress(total=10, interval_s=0.0, stream=stream)
    for _ in range(20):
        progress.live(0, 0)  # 20 ticks with nothing new
    assert len(stream.getvalue().splitlines()) == 1
    progress.live(2, 0)  # something new prints at once
    assert len(stream.getvalue().splitlines()) == 2


def test_ray_data_warnings_reach_the_console_as_one_line_once():
    pytest.importorskip("ray")
    from ray.data._internal.issue_detection.detectors.high_memory_detector import (
        HIGH_MEMORY_PERIODIC_WARNING, _format_message)

    from raynas.distributed.quiet import OncePerMessage, OneLineFormatter

    def warning(gib: float) -> str:  # what Ray Data logs every 30 s (17 lines)
        return _format_message(HIGH_MEMORY_PERIODIC_WARNING.format(
            op_name="MapBatches(ShardScorer)", memory_per_task=f"{gib}GiB", max_memory="5.2GiB",
            initial_memory_request="0.0B", recommended_memory="6.5GiB", recommended_memory_bytes=6979321856,
            detection_time_interval_s=30))

    assert len(warning(4.7).strip().splitlines()) > 10
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OncePerMessage())
    handler.setFormatter(OneLineFormatter(logging.Formatter("%(levelname)s %(message)s")))
    log = logging.getLogger("raynas.test_cost.ray_data")
    log.propagate, log.handlers = False, [handler]
    log.warning(warning(4.7))
    log.warning(warning(4.9))  # the same warning, 30 s later, with new figures
    log.error("a failure\n\nwith its details")  # errors stay whole
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("WARNING Operator 'MapBatches(ShardScorer)' uses 4.7GiB of memory per worker")
    assert lines[0].endswith("[more in Ray's log: /tmp/ray/session_latest/logs]")
    assert lines[1:] == ["ERROR a failure", "", "with its details"]


def test_cpu_actors_ask_for_the_memory_a_cell_needs(monkeypatch, tmp_path):
    ray = pytest.importorskip("ray")
    from raynas.distributed.driver import RunOptions, _plan_actors

    gib = 2**30
    spec = ScoringSpec.resolve("nb101", "intrain;gradalign;params")
    need = cell_cost(spec).memory_request_bytes
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # an embedded Ray: this machine's memory is all there is
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "memory": 3.5 * need})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 8.0, "memory": 3.5 * need}}])
    opts = RunOptions(space="nb101", proxies="intrain;gradalign;params", out=tmp_path, device="cpu", max_actors=8,
                      log=logging.getLogger("raynas.test_cost"))
    plan = _plan_actors(opts, [0, 1], spec, spec.config())
    assert (plan.device, plan.actors, plan.memory_bytes) == ("cpu", 3, need)  # three fit, not eight
    # One actor's need beyond every node: no request (it would wait forever), and a warning.
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"memory": 1.0 * gib}}])
    plan = _plan_actors(opts, [0, 1], spec, spec.config())
    assert plan.memory_bytes is None and plan.actors == 8
    # A cluster (an autoscaler may add nodes): the request, and no cap on the actors.
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"memory": 3.5 * need}}])
    opts.address = "ray://head:10001"
    plan = _plan_actors(opts, [0, 1], spec, spec.config())
    assert (plan.actors, plan.memory_bytes) == (8, need)


def test_no_estimate_for_a_plugin_space():
    import dataclasses

    spec = ScoringSpec.resolve("nb201", "intrain")
    assert cell_cost(spec) is not None
    plugin = dataclasses.replace(spec, space_source={"import": "my_spaces:NB201Copy", "package": None})
    assert cell_cost(plugin) is None  # its cells may cost anything: no figure rather than a wrong one


FUSABLE = "intrain:batch_size=8,resolution=8;grad_norm:batch_size=4;params"


def test_a_fused_pass_holds_every_cell_it_fuses():
    """Issue 25: K cells in one pass hold K networks (and the fused copy of each, with its
    gradients) at once, so the measured peak grows by at least that per added cell."""
    from raynas.distributed.packing import measure_cpu_peak
    from raynas.measure import reset_process_peak
    from raynas.spaces import get_space

    if not reset_process_peak():
        pytest.skip("this kernel does not let a process reset its peak memory (/proc/self/clear_refs)")
    config = ScoringSpec.resolve("nb201", FUSABLE).config()
    one, four = (measure_cpu_peak(config, 1462, k, threads=1) for k in (1, 4))
    network_mb = sum(p.numel() for p in get_space("nb201").build(1462, 10).parameters()) * 4 / 2**20
    assert four - one >= 3 * 2 * network_mb, (one, four, network_mb)


def test_cpu_actors_that_fuse_ask_for_the_memory_one_pass_measured(monkeypatch, tmp_path, caplog):
    """With ``--cells-per-pass K`` a CPU actor's request is the measured peak of one pass of
    K copies of the calibration cell (×1.25), not the cost table's one-cell figure (the Ray
    task runs in this process here)."""
    ray = pytest.importorskip("ray")
    import raynas.distributed.packing as packing
    from raynas.distributed.driver import RunOptions, _plan_actors

    peaks: list[tuple[int, float]] = []
    measure = packing.measure_cpu_peak

    def recorded(config, cell, k, threads):
        peaks.append((k, measure(config, cell, k, threads)))
        return peaks[-1][1]

    monkeypatch.setattr(packing, "measure_cpu_peak", recorded)
    monkeypatch.setattr(ray, "remote", lambda **_resources: lambda fn: type("Task", (), {"remote": staticmethod(fn)}))
    monkeypatch.setattr(ray, "get", lambda value: value)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "memory": 64 * 2**30})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 8.0, "memory": 64 * 2**30}}])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = ScoringSpec.resolve("nb201", FUSABLE)
    opts = RunOptions(space="nb201", proxies=FUSABLE, out=tmp_path, device="cpu", max_actors=2, cells_per_pass=3,
                      log=logging.getLogger("raynas.test_cost"))
    with caplog.at_level(logging.INFO, logger="raynas.test_cost"):
        plan = _plan_actors(opts, [0, 1], spec, spec.config())
    ((k, peak_mb),) = peaks
    assert k == 3 and plan.memory_bytes == int(peak_mb * 1.25 * 2**20)
    assert "one pass of 3 copies of cell 1462" in caplog.text
    # Nothing fuses (NB101): cells go one at a time whatever K says, so the one-cell figure
    # stands, and no calibration pass (of NB101 cells, ~50 s each) is run.
    nb101 = ScoringSpec.resolve("nb101", "intrain;params")
    opts.space, opts.proxies = "nb101", "intrain;params"
    plan = _plan_actors(opts, [0, 1], nb101, nb101.config())
    assert len(peaks) == 1 and plan.memory_bytes == cell_cost(nb101).memory_request_bytes


def test_re_measuring_some_proxies_keeps_the_others_figures():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from cell_costs import merged_space

    before = {"measured": "day 1 (all)", "base_mb": 260.0,
              "proxies": {"swap": {"seconds": 7.3, "peak_mb": 233.0}, "zen": {"seconds": 1.3, "peak_mb": 88.0}}}
    swap_again = {"swap": {"seconds": 2.2, "peak_mb": 88.0}}
    merged = merged_space(before, swap_again, 255.0, "day 2 (swap)")
    assert merged == {"measured": "day 1 (all); swap: day 2 (swap)", "base_mb": 260.0,
                      "proxies": {"swap": {"seconds": 2.2, "peak_mb": 88.0}, "zen": {"seconds": 1.3, "peak_mb": 88.0}}}
    everything = {**swap_again, "zen": {"seconds": 1.0, "peak_mb": 80.0}}
    assert merged_space(before, everything, 255.0, "day 2 (all)") == {"measured": "day 2 (all)", "base_mb": 255.0,
                                                                      "proxies": everything}
    assert merged_space(None, swap_again, 255.0, "day 2")["proxies"] == swap_again
