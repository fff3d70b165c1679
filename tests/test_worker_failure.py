"""A failure of a scoring actor that is not a cell's — here, a worker that resolves another
probe file than the driver — stops the run at once with its cause on one line, instead of
four actor restarts and pages of Ray traceback (issue 10, item 3)."""

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from conftest import own_ray  # noqa: E402
from raynas.cli import main  # noqa: E402


def own_probe_file(folder) -> None:
    """A CIFAR-10 probe file of one's own (the shipped one's first 200 images): the driver
    resolves it, workers that look elsewhere resolve the shipped one."""
    import numpy as np

    from raynas.datafiles import EMBEDDED_DIR

    shipped = np.load(EMBEDDED_DIR / "cifar" / "cifar10_probe.npz")
    (folder / "cifar").mkdir(parents=True)
    np.savez(folder / "cifar" / "cifar10_probe.npz", **{k: shipped[k][:200] for k in shipped.files})


def test_a_worker_that_cannot_start_stops_the_run_with_its_cause(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    own_probe_file(tmp_path / "driver-data")
    monkeypatch.setenv("RAYNAS_DATA_DIR", str(tmp_path / "driver-data"))  # the driver: its own probe file
    empty = tmp_path / "empty-data"
    empty.mkdir()
    # The workers: another RAYNAS_DATA_DIR, so they fall back to the shipped probe file.
    own_ray()
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"RAYNAS_DATA_DIR": str(empty)}})
    try:
        code = main(["score", "nb201", "--proxies", "naswot:batch_size=16", "--out", str(tmp_path / "run"),
                     "--limit", "4", "--shard-size", "2"])
    finally:
        ray.shutdown()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("raynas: error: the run stopped after 0 of 4 cells")
    assert "Cause: RuntimeError: this worker would compute something else than the run records: probe_data" in err
    assert "'origin': 'embedded'" in err and "Traceback" not in err
    assert not list((tmp_path / "run").glob("part-*.parquet"))
