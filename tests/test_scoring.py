import dataclasses
import math

import pytest
import torch

from raynas import score
from raynas.probes import balanced_indices, gaussian_batch, real_batch
from raynas.proxies.registry import parse_proxies, parse_proxy
from raynas.scoring import CellScorer

CHEAP = "intrain:batch_size=8,resolution=16;params;flops"


def test_row_has_components_status_and_timings():
    row = score("nb201", 13714, CHEAP, device="cpu")
    assert row["index"] == 13714 and row["status"] == "ok" and row["error"] == ""
    assert row["params"] == 1_073_466
    assert row["flops"] == pytest.approx(153.27e6, rel=1e-3)  # API: 153.27 MFLOPs (C10)
    assert row["intrain"] == pytest.approx(row["gamma"] * (1 + row["o"]) / math.log(row["L"] + 1))
    assert row["intrain_time_s"] > 0 and row["build_time_s"] > 0


def test_scores_depend_only_on_cell_not_on_order():
    cells = [5, 13714, 1, 777]
    forward = {r["index"]: r for r in CellScorer("nb201", CHEAP).iter_scores(cells)}
    backward = {r["index"]: r for r in CellScorer("nb201", CHEAP).iter_scores(cells[::-1])}
    torch.manual_seed(12345)  # global RNG state must not matter
    single = score("nb201", 777, CHEAP)
    for i in cells:
        assert forward[i]["intrain"] == backward[i]["intrain"]
        assert forward[i]["o"] == backward[i]["o"]
    assert single["intrain"] == forward[777]["intrain"]


def test_seed_changes_scores():
    assert score("nb201", 1, CHEAP, seed=0)["intrain"] != score("nb201", 1, CHEAP, seed=1)["intrain"]


def test_degenerate_cell_gives_nan_with_status_but_structure_still_counts():
    row = score("nb201", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", CHEAP)
    assert row["status"] == "degenerate"
    assert math.isnan(row["intrain"]) and math.isnan(row["gamma"])
    assert row["params"] > 0


def test_failing_proxy_becomes_error_row_without_stopping():
    scorer = CellScorer("nb201", CHEAP)

    def boom(model, batch, options, ctx):
        raise RuntimeError("CUDA out of memory (simulated)")

    failing = dataclasses.replace(scorer.proxies[0].proxy, compute=boom)
    scorer.proxies[0] = dataclasses.replace(scorer.proxies[0], proxy=failing)
    rows = list(scorer.iter_scores([1, 2]))
    assert [r["status"] for r in rows] == ["error", "error"]
    assert "intrain: RuntimeError: CUDA out of memory" in rows[0]["error"]
    assert math.isnan(rows[0]["intrain"]) and rows[0]["params"] > 0


def test_proxy_requests_parse_and_fail_clearly():
    cp = parse_proxy("in64=intrain:resolution=64,batch_size=32")
    assert cp.label == "in64" and cp.options.resolution == 64 and cp.options.batch_size == 32
    assert cp.columns[0] == "in64__intrain"
    assert [c.label for c in parse_proxies("intrain,gradalign")] == ["intrain", "gradalign"]
    with pytest.raises(ValueError, match="unknown proxy 'synflw'"):
        parse_proxies("synflw")
    with pytest.raises(ValueError, match="bad option 'res=3'"):
        parse_proxy("intrain:res=3")
    with pytest.raises(ValueError, match="cannot read 'big'"):
        parse_proxy("intrain:resolution=big")
    with pytest.raises(ValueError, match="both produce column"):
        parse_proxies(["intrain", "intrain:resolution=64"])


def test_unknown_dataset_and_missing_imagenet_images():
    with pytest.raises(ValueError, match="unknown dataset 'cifar1000'"):
        CellScorer("nb201", "params", dataset="cifar1000")
    with pytest.raises(FileNotFoundError, match="imagenet16-120 images are not available"):
        CellScorer("nb201", "gradalign", dataset="imagenet16-120")
    # Synthetic-data proxies still work on ImageNet16-120 (16×16, 120 classes).
    row = score("nb201", 1, "intrain:batch_size=8;params", dataset="imagenet16-120")
    assert row["params"] == 802_426 + 64 * 110 + 110


def test_missing_data_dir_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="RAYNAS_DATA_DIR=.*missing' is not a folder"):
        real_batch("cifar10", 16, 0)


def test_gaussian_probe_is_seeded_privately():
    a, b = gaussian_batch(8, 8, 10, seed=3), gaussian_batch(8, 8, 10, seed=3)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, gaussian_batch(8, 8, 10, seed=4).inputs)


def test_balanced_real_batches():
    import numpy as np

    labels = np.repeat(np.arange(100), 9)
    idx = balanced_indices(labels, 128, seed=0)
    counts = np.bincount(labels[idx], minlength=100)
    assert len(idx) == 128 and len(set(idx)) == 128
    assert (counts[counts > 0] == 2).all() and (counts > 0).sum() == 64
    batch = real_batch("cifar10", 128, 0)
    per_class = torch.bincount(batch.labels, minlength=10)
    assert per_class.min() >= 12 and per_class.max() <= 13
    assert abs(float(batch.inputs.mean())) < 0.3 and 0.7 < float(batch.inputs.std()) < 1.3


def test_initial_state_restores_what_proxies_change():
    """BN running statistics move inside the kernel (no version bump) and a parameter
    changed in place (version bump): both come back, untouched tensors are not copied."""
    from torch import nn

    from raynas.scoring import InitialState

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    net(torch.randn(2, 3, 5, 5))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = InitialState(net)
    net.train()(torch.randn(8, 3, 5, 5) * 3 + 1)
    with torch.no_grad():
        net[0].weight.mul_(2.0)
    assert not torch.equal(net[1].running_var, before["1.running_var"])
    untouched = net[4].weight._version
    state.restore()
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net[4].weight._version == untouched  # not rewritten


def test_scorer_threads_explicit_or_chosen_from_idle_cores(monkeypatch, caplog):
    import os

    import torch

    import raynas.scoring as scoring

    before = torch.get_num_threads()
    try:
        assert CellScorer("nb201", "params", threads=1).threads == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads must be at least 1"):
            CellScorer("nb201", "params", threads=0)
        monkeypatch.setattr(scoring, "TORCH_DEFAULT_THREADS", 8)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
        monkeypatch.setattr(os, "getloadavg", lambda: (5.6, 0.0, 0.0))
        monkeypatch.setattr(scoring, "_told_threads", False)
        with caplog.at_level("WARNING", logger="raynas.scoring"):
            assert CellScorer("nb201", "params").threads == 2  # 8 cores, ~6 busy
            CellScorer("nb201", "params")
        told = [r.getMessage() for r in caplog.records if "torch CPU thread" in r.getMessage()]
        assert told == ["scoring with 2 torch CPU thread(s) (8 usable cores, 5.6 busy); pass threads=N to "
                        "CellScorer or score() to choose"]  # once per process
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert CellScorer("nb201", "params").threads == 8  # an idle machine: torch's default
    finally:
        torch.set_num_threads(before)


def test_a_proxy_seed_depends_on_proxy_and_options_not_on_its_label():
    """``z2=zen`` and ``zen`` draw the same re-initialisation: one cell, one score."""
    row = CellScorer("nb201", "zen:batch_size=4;z2=zen:batch_size=4;z3=zen:batch_size=6", threads=1).score(9000)
    assert row["zen"] == row["z2__zen"] and math.isfinite(row["zen"])
    assert row["z3__zen"] != row["zen"]  # other options: another proxy config, its own seed
    assert parse_proxy("zen").seed_key == "zen"  # default options keep the key scores were made with
    assert parse_proxy("z2=zen:batch_size=4").seed_key == 'zen:{"batch_size": 4}'


def test_an_error_outranks_a_degenerate_status_whatever_the_order(monkeypatch):
    import dataclasses

    from raynas.proxies.base import DegenerateNetwork

    def fails(*args):
        raise RuntimeError("out of memory")

    def degenerate(*args):
        raise DegenerateNetwork("constant output")

    failing = dataclasses.replace(parse_proxy("params"), label="p1")
    failing = dataclasses.replace(failing, proxy=dataclasses.replace(failing.proxy, compute=fails))
    flat = dataclasses.replace(parse_proxy("naswot:batch_size=8"), label="n1")
    flat = dataclasses.replace(flat, proxy=dataclasses.replace(flat.proxy, compute=degenerate))
    for order in ([failing, flat], [flat, failing]):
        row = CellScorer("nb201", order, threads=1).score(9000)
        assert row["status"] == "error", order
        assert "p1: RuntimeError: out of memory" in row["error"] and "n1: constant output" in row["error"]


def test_the_numerical_core_imports_without_ray():
    import subprocess
    import sys

    code = ("import sys; import raynas.scoring, raynas.spec, raynas.analysis, raynas.results, raynas.cli; "
            "from raynas.proxies.registry import PROXIES; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'; "
            "import raynas.cli as c; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    cli_only = subprocess.run([sys.executable, "-c", "import sys, raynas.cli; print('torch' in sys.modules)"],
                              capture_output=True, text=True, timeout=120)
    assert cli_only.stdout.strip() == "False"  # `raynas --help` does not pay for torch
