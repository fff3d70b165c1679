"""Bring your own proxy and space (issue 11): by import path and by an installed package's
entry points, scored through the CLI on the embedded Ray and reported; the run records where
each plugin comes from, and a worker without it stops the run naming the module."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raynas.plugins import PluginError
from raynas.proxies.registry import find_proxy, parse_proxy
from raynas.spaces import find_space

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> Path:
    """The examples as an installed package 'raynas-examples' 0.3 declaring entry points
    (a dist-info folder on the path is all importlib.metadata needs)."""
    site = tmp_path / "site"
    info = site / "raynas_examples-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: raynas-examples\nVersion: 0.3\n")
    (info / "top_level.txt").write_text("chain_space\ninput_sensitivity\n")
    (info / "entry_points.txt").write_text("[raynas.proxies]\nsensitivity = input_sensitivity:PROXY\n\n"
                                           "[raynas.spaces]\nchains = chain_space:SPACE\n")
    for path in (str(EXAMPLES), str(site)):
        monkeypatch.syspath_prepend(path)
    return site


def test_import_path_and_entry_point_resolve_with_their_origin(plugin_site):
    proxy, source = find_proxy("input_sensitivity.PROXY")
    assert proxy.name == "input_sensitivity" and source == {
        "import": "input_sensitivity.PROXY", "package": "raynas-examples", "version": "0.3"}
    configured = parse_proxy("sensitivity:batch_size=4")  # the entry point's name
    assert configured.label == "input_sensitivity" and configured.options.batch_size == 4
    assert configured.source["import"] == "input_sensitivity:PROXY"
    space, source = find_space("chains")
    assert len(space) == 258 and space.arch_str(space.index_of("16k3-32k1")) == "16k3-32k1"
    assert source["package"] == "raynas-examples"
    assert find_proxy("params")[1] is None  # built-ins record nothing extra


@pytest.mark.parametrize("request_, message", [
    ("no_such_pkg.zc.PROXY", "cannot import module 'no_such_pkg.zc'"),
    ("input_sensitivity.MISSING", "module 'input_sensitivity' has no 'MISSING'"),
    ("input_sensitivity.Options", "is a type, not a raynas.proxies.base.ProxyDef"),
    ("nonsense", "unknown proxy 'nonsense'; built-in: "),
])
def test_bad_plugin_requests_name_what_is_wrong(plugin_site, request_, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_proxy(request_)


@pytest.mark.ray
def test_a_worker_without_the_plugin_fails_naming_the_module(plugin_site, tmp_path):
    from raynas.distributed.actor import ShardScorer, WorkerSetupError
    from raynas.spec import ScoringSpec

    config = ScoringSpec.resolve("nb201", "params;input_sensitivity.PROXY").config()
    config["proxies"][1]["source"]["import"] = "gone_from_this_node.PROXY"
    worker = ShardScorer(config, "cpu", str(tmp_path))
    with pytest.raises(WorkerSetupError, match="cannot import module 'gone_from_this_node'"):
        worker({"cells": [[0]]})
    assert isinstance(PluginError("x"), ValueError)


def _cli(args: list[str], site: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "raynas.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def _chain_ground_truth(path: Path) -> None:
    """A made-up accuracy per chain: its parameter count, so that the report's τ of
    params must be exactly 1 if cells, strings and indices line up."""
    sys.path.insert(0, str(EXAMPLES))
    from chain_space import SPACE

    arch = [SPACE.arch_str(i) for i in range(len(SPACE))]
    accuracy = [float(sum(p.numel() for p in SPACE.build(i, 10).parameters())) for i in range(len(SPACE))]
    pq.write_table(pa.table({"arch": arch, "accuracy": accuracy}), path)


@pytest.mark.parametrize("how", ["import path", "entry point"])
@pytest.mark.ray
def test_plugins_scored_through_the_cli_and_reported(plugin_site, tmp_path, how):
    space, proxy = ("chain_space.SPACE", "input_sensitivity.PROXY") if how == "import path" else ("chains", "sensitivity")
    out = tmp_path / "chains"
    done = _cli(["score", space, "--proxies", f"params;{proxy}:batch_size=4", "--out", str(out), "--cells", "0:40",
                 "--shard-size", "10"], plugin_site)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scored 40 cells" in done.stdout
    run = json.loads((out / "_raynas_run.json").read_text())
    assert run["config"]["space"] == "chains"
    assert run["config"]["space_source"]["package"] == "raynas-examples"
    assert run["config"]["proxies"][1]["source"] == {
        "import": "input_sensitivity.PROXY" if how == "import path" else "input_sensitivity:PROXY",
        "package": "raynas-examples", "version": "0.3"}
    assert run["columns"]["batch"] == {"role": "diagnostic"}

    refused = _cli(["report", str(out)], plugin_site)
    assert refused.returncode == 2 and "has no ground truth of its own; pass --ground-truth FILE" in refused.stderr
    truth = tmp_path / "truth.parquet"
    _chain_ground_truth(truth)
    report = _cli(["report", str(out), "--ground-truth", str(truth)], plugin_site)
    assert report.returncode == 0, report.stderr[-3000:]
    lines = report.stdout.splitlines()
    assert lines[0] == "40 cells from 4 part(s)"
    rows = {line.split()[0]: line.split() for line in lines[3:] if not line.startswith("  ")}  # not the notes
    assert set(rows) == {"params", "input_sensitivity"}  # the diagnostic 'batch' is no score
    assert rows["params"][2] == "1.000"  # kendall_tau


def test_info_lists_installed_plugins(plugin_site):
    done = _cli(["info", "nb201"], plugin_site)
    assert done.returncode == 0, done.stderr
    assert "plugin proxy sensitivity = input_sensitivity:PROXY (raynas-examples 0.3)" in done.stdout
    assert "plugin space chains = chain_space:SPACE (raynas-examples 0.3)" in done.stdout
    assert "'all' means these built-ins" in done.stdout
