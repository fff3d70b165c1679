"""Fused scoring (issue 25): K NB201 cells in one pass give each cell the per-cell path's
InTrain, grad_norm and snip — in float64 to rounding, in float32 within the kernels'
tolerances — whichever cells share the pass, degenerate cells and cells with dead edges
included."""

import math

import numpy as np
import pytest

from raynas.scoring import CellScorer
from raynas.spaces import get_space
from tests.kernel_tolerances import FLOAT32

SPACE = get_space("nb201")
CHEAP = "intrain:batch_size=8,resolution=8;grad_norm:batch_size=4;snip:batch_size=4;params"
COMPONENTS = ("intrain", "gamma", "o", "L", "o_zero_tensors", "grad_norm", "snip")


def mixed_cells(n: int, seed: int) -> list[int]:
    """``n`` cells: random ones, two degenerate ones, and 2000 (edges whose node never reaches
    the output: computed, but without a gradient in the per-cell network)."""
    degenerate = [i for i in range(200) if SPACE.is_degenerate(i)][:2]
    rest = [int(c) for c in np.random.default_rng(seed).choice(len(SPACE), n, replace=False)]
    return ([2000, *degenerate, *rest])[:n]


def rows(cells, cells_per_pass=None, precision="float32", proxies=CHEAP):
    """Rows from the per-cell path (None) or the fused one (K cells per pass)."""
    scorer = CellScorer("nb201", proxies, threads=1, precision=precision, cells_per_pass=cells_per_pass)
    assert bool(scorer.fused_proxies) == (cells_per_pass is not None)
    return list(scorer.iter_scores(cells))


def relative(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_fused_intrain_equals_the_per_cell_path_in_float64(k):
    cells = mixed_cells(16, seed=k)
    assert sum(SPACE.is_degenerate(c) for c in cells) >= 2
    per_cell, fused = rows(cells, None, "float64"), rows(cells, k, "float64")
    assert [r["index"] for r in fused] == cells
    for a, b in zip(per_cell, fused):
        assert (a["status"], a["error"]) == (b["status"], b["error"]), a["index"]
        for c in COMPONENTS:
            if math.isnan(a[c]):
                assert math.isnan(b[c]) and a["status"] == "degenerate"
            else:
                assert relative(a[c], b[c]) <= 1e-9, (a["index"], c, a[c], b[c])
        assert a["params"] == b["params"]


def test_64_cells_in_one_float32_pass_agree_within_the_kernels_tolerances():
    cells, intrain = mixed_cells(64, seed=64), "intrain:batch_size=8,resolution=8"
    for a, b in zip(rows(cells, proxies=intrain), rows(cells, 64, proxies=intrain)):
        assert a["status"] == b["status"]
        for c in COMPONENTS[:5]:
            if not math.isnan(a[c]):
                assert relative(a[c], b[c]) <= FLOAT32[c][0], (a["index"], c, a[c], b[c])


def test_a_cell_scores_the_same_whichever_cells_share_its_pass():
    first = {r["index"]: r for r in rows([2000, 5, 17, 9000], 4, "float64")}
    second = {r["index"]: r for r in rows([9000, 12, 2000, 15624], 4, "float64")}
    for index in (2000, 9000):
        for c in COMPONENTS:
            assert relative(first[index][c], second[index][c]) <= 1e-9


def test_cells_per_pass_must_be_positive():
    with pytest.raises(ValueError, match="cells_per_pass must be at least 1"):
        CellScorer("nb201", "intrain", cells_per_pass=0)
    assert CellScorer("nb201", "intrain;params").cells_per_pass == 1  # auto: the per-cell path, for now
    fused = CellScorer("nb201", "intrain;snip;params;zen", cells_per_pass=8).fused_proxies
    assert [cp.label for cp in fused] == ["intrain", "snip"]  # params and zen: cell by cell


def test_a_scoring_actor_scores_its_shard_in_fused_passes(tmp_path):
    import pyarrow.parquet as pq

    from raynas.distributed.actor import ShardScorer
    from raynas.spec import ScoringSpec

    config = ScoringSpec.resolve("nb201", CHEAP, precision="float64").config()
    actor = ShardScorer(config, "cpu", str(tmp_path), threads=1, cells_per_pass=3)
    assert actor.setup_error is None and [cp.label for cp in actor.scorer.fused_proxies] == ["intrain", "grad_norm",
                                                                                           "snip"]
    cells = mixed_cells(7, seed=1)
    summary = actor.score_shard(cells)
    written = {r["index"]: r for r in pq.read_table(tmp_path / summary["part"]).to_pylist()}
    for a in rows(cells, None, "float64"):
        b = written[a["index"]]
        assert a["status"] == b["status"] and (math.isnan(a["intrain"]) or relative(a["intrain"], b["intrain"]) <= 1e-9)


def test_a_bad_cells_per_pass_is_refused_before_any_work(tmp_path, capsys):
    from raynas.cli import main

    out = tmp_path / "run"
    assert main(["score", "nb201", "--proxies", "params", "--cells-per-pass", "0", "--out", str(out), "--limit", "2"]) == 2
    assert "--cells-per-pass must be at least 1, got 0" in capsys.readouterr().err
    assert not out.exists()


# GradAlign in float64, fused against the per-cell vmap route: the per-sample gradients agree
# to ~1e-16 of each tensor's largest, but a component whose exact value is zero (or a class
# sum that cancels) is rounding noise in both, and its sign can differ, as between two
# kernels (GA-I: 6e-7 and 2.8e-5 measured on cells 2000 and 9035 at batch 12): the kernels'
# tolerances, whose causes say so.
FLIP = {c: FLOAT32[c][0] for c in ("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes")}


def test_fused_gradalign_is_the_per_cell_vmap_route_in_float64():
    """GradAlign's per-sample gradients through the fused network are the per-cell
    network's vmap gradients and the sign sums are exact: equal but for the signs of
    rounding noise (:data:`FLIP`), whichever cells share the pass, with each cell's own
    parameter count."""
    from raynas.fused.gradalign import fused_gradalign
    from raynas.fused.nb201 import FusedNB201
    from raynas.proxies.gradalign import model_alignment

    scorer = CellScorer("nb201", "gradalign:batch_size=12", threads=1, precision="float64", measure_memory=False)
    (batch,) = scorer._probes.values()
    cells = [c for c in mixed_cells(6, seed=7) if not SPACE.is_degenerate(c)]
    fused = fused_gradalign(FusedNB201([scorer._build(c)[0] for c in cells]), batch, scorer.proxies[0].options)
    alone = fused_gradalign(FusedNB201([scorer._build(cells[-1])[0]]), batch, scorer.proxies[0].options)[0]
    for cell, got in zip(cells, fused):
        model = scorer._build(cell)[0]
        want = model_alignment(model, batch, "per_sample", max_rows=1000, closed_form=False)
        for c, allowed in FLIP.items():
            assert relative(want[c], got[c]) <= allowed, (cell, c, want[c], got[c])
        assert got["gradalign_1_per_param"] == got["gradalign_1"] / sum(p.numel() for p in model.parameters())
    assert all(relative(alone[c], fused[-1][c]) <= FLIP[c] for c in alone)


def test_fused_gradalign_agrees_with_the_default_route_within_the_kernels_tolerance():
    """Against the per-cell default (closed-form per-sample gradients) the difference is the
    one between two kernels: signs of rounding-noise components (tests/kernel_tolerances.py);
    options other than the defaults go cell by cell."""
    spec = "gradalign:batch_size=20"
    cells = mixed_cells(6, seed=3)
    for a, b in zip(rows(cells, proxies=spec), rows(cells, 6, proxies=spec)):
        assert a["status"] == b["status"]
        for c in ("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes"):
            if not math.isnan(a[c]):
                assert relative(a[c], b[c]) <= FLOAT32[c][0], (a["index"], c, a[c], b[c])
    assert not CellScorer("nb201", "gradalign:bn=eval", cells_per_pass=4).fused_proxies


def test_a_failed_fused_pass_scores_its_cells_one_by_one(monkeypatch, caplog):
    """A fused pass that fails (out of memory at a large K, say) loses no cell: they are
    scored on the per-cell path, with the cause in the log."""
    import raynas.fused

    def fail(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    cells = mixed_cells(4, seed=2)
    want = rows(cells, None, "float64")
    monkeypatch.setattr(raynas.fused, "fused_scores", fail)
    got = rows(cells, 4, "float64")
    assert "the fused pass failed (RuntimeError" in caplog.text and "cell by cell" in caplog.text
    for a, b in zip(want, got):
        assert (a["status"], a["error"]) == (b["status"], b["error"])
        assert all(a[c] == b[c] or (math.isnan(a[c]) and math.isnan(b[c])) for c in COMPONENTS)


def test_cells_per_pass_from_measured_memory():
    """The auto choice on a device that fuses: K from one fused pass's peak memory per cell
    against the scorer's share of the device, within 1..MAX, with its reason."""
    from raynas.scoring import MAX_CELLS_PER_PASS, plan_cells_per_pass

    assert plan_cells_per_pass(100.0, 1500.0, "x")[0] == 8  # 1500 · 0.8 // (100 · 1.5)
    assert plan_cells_per_pass(1e6, 10.0, "x")[0] == 1
    assert plan_cells_per_pass(0.001, 1e6, "x")[0] == MAX_CELLS_PER_PASS
    k, reason = plan_cells_per_pass(100.0, 1500.0, "cell 7 on this host")
    assert "100 MiB per cell (cell 7 on this host)" in reason and reason.endswith("→ 8")
    scorer = CellScorer("nb201", "intrain:batch_size=4,resolution=8", threads=1, cells_per_pass=2)
    k, reason = scorer._measured_cells_per_pass(scorer.fused_proxies, share=0.5)  # on this CPU: a real measurement
    assert 1 <= k <= MAX_CELLS_PER_PASS and "MiB per cell (cell" in reason and "0.5 of it" in reason
    assert CellScorer("nb201", "intrain").cells_per_pass_reason.startswith("the per-cell path on cpu")
