"""An embedded Ray that misses Ray's fixed 30 s start-up window on a busy machine is started
again (up to ``STARTS`` tries, each said in one line), and any other failure stands at once."""

import logging

import pytest
import ray

from raynas.distributed import quiet


def fake_ray(monkeypatch, failures: list[Exception]):
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        if failures:
            raise failures.pop(0)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    return calls


TIMEOUT = Exception("The current node timed out during startup. This could happen because ...")


def test_a_slow_start_is_tried_again_and_said(monkeypatch):
    calls = fake_ray(monkeypatch, [TIMEOUT, TIMEOUT])
    said = []  # the logger itself, not a capture handler (handlers of earlier tests may filter repeats)
    monkeypatch.setattr(logging.getLogger("raynas.driver"), "warning", lambda message, *a, **k: said.append(message))
    quiet.init_embedded_ray(3)
    assert len(calls) == quiet.STARTS == 3 and all(c["num_cpus"] == 3 for c in calls)
    assert [m.rsplit("(", 1)[1] for m in said] == ["2 of 3)", "3 of 3)"]


def test_the_last_slow_start_and_any_other_failure_stand(monkeypatch):
    calls = fake_ray(monkeypatch, [TIMEOUT] * quiet.STARTS)
    with pytest.raises(Exception, match="timed out during startup"):
        quiet.init_embedded_ray(2)
    assert len(calls) == quiet.STARTS
    calls = fake_ray(monkeypatch, [RuntimeError("no such address")])
    with pytest.raises(RuntimeError, match="no such address"):
        quiet.init_embedded_ray(2)
    assert len(calls) == 1
