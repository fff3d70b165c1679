"""--device cuda on a cluster with no GPU: it says it is waiting, and gives up with a clear
message after a stated time; an embedded Ray (which can never gain a GPU) refuses at once."""

import logging

import pytest

ray = pytest.importorskip("ray")

from raynas.distributed.driver import RunOptions, wait_for_gpus  # noqa: E402


def options(tmp_path, address, wait_s):
    return RunOptions(space="nb201", proxies="params", out=tmp_path, device="cuda", address=address,
                      gpu_wait_s=wait_s, log=logging.getLogger("raynas.test_gpu_wait"))


def test_a_cluster_without_a_gpu_node_gives_up_saying_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0})  # a fake cluster: no GPU node, ever
    with caplog.at_level(logging.WARNING, "raynas.test_gpu_wait"):
        with pytest.raises(RuntimeError, match="no GPU joined the cluster in 0 s; does it have a GPU node type"):
            wait_for_gpus(options(tmp_path, "ray://head:10001", 0.3), poll_s=0.05)
    assert "waiting for a GPU node" in caplog.text


def test_a_gpu_that_arrives_is_used(tmp_path, monkeypatch):
    answers = iter([{"CPU": 4.0}, {"CPU": 4.0}, {"CPU": 12.0, "GPU": 2.0}])
    monkeypatch.setattr(ray, "cluster_resources", lambda: next(answers))
    assert wait_for_gpus(options(tmp_path, "ray://head:10001", 60), poll_s=0.01) == 2.0


def test_an_embedded_ray_without_a_gpu_refuses_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: pytest.fail("must not wait"))
    with pytest.raises(RuntimeError, match="embedded Ray on this machine has no GPU"):
        wait_for_gpus(options(tmp_path, None, 600))
