"""The scores of the stored reference, computed by earlier code on another machine.

``tests/data/hotpath_reference.json`` holds every component of every proxy on fixed NB201
and NB101 cells, computed by raynas as of the commit it names (before the hot path was
rewritten; the command that wrote it is in ``benchmarks/hotpath_reference.py``), under the
definitions of that time: no rounding-noise thresholds (``noise_tol=0`` for InTrain,
GradAlign and ZiCo), which is how this test scores them.

It was computed on another CPU, so each component may differ by what two float32
kernels give (``tests/kernel_tolerances.py``, each tolerance with its cause); InTrain's o
(with its product) also moves by the rounding noise the thresholds now remove (without
them, a tensor whose exact gradient is zero adds an arbitrary ratio in [0, 1]: ≤ 3.5e-3
relative between kernels, docs/history.md), which its tolerance of 1e-1 covers. GradAlign's per-sample gradients are fp32 in
another order than the reference's vmap: on NB101 a batched convolution's rounding depends
on the batch it runs in, and per-sample BN on deep 8×8 maps amplifies it (GA-I ~4e-5). The
second test shows that the reduction itself is unchanged: vmap given the old grouping (one
class per call) reproduces the old scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kernel_tolerances import tolerance
from raynas.proxies.registry import GROUPS, parse_proxy, split_proxy_requests
from raynas.scoring import CellScorer

REFERENCE = Path(__file__).parent / "data" / "hotpath_reference.json"
CASES = json.loads(REFERENCE.read_text())["cases"]
THRESHOLDED = ("intrain", "gradalign", "zico")  # proxies whose definition gained noise_tol since


def old_definitions(proxies: str, columns) -> str:
    """The reference's proxy request with the thresholds off, as the reference computed them,
    and only the proxies it holds columns of (``all`` meant fewer proxies then: scoring the
    newer ones would only take time)."""
    requests = [name for r in split_proxy_requests(proxies) for name in GROUPS.get(r, (r,))]
    requests = [r for r in requests if any(c in columns for c in parse_proxy(r).columns)]
    return ";".join(f"{r},noise_tol=0" if ":" in r and r.split(":")[0] in THRESHOLDED else
                    f"{r}:noise_tol=0" if r in THRESHOLDED else r for r in requests)


def decode(value: float | str) -> float:
    return float(value)


# An NB101 cell with every proxy costs ~3 minutes on this project's 2-core machine: the
# default tier compares the first of the two, the slow tier the second.
@pytest.mark.parametrize("space, which", [
    pytest.param("nb201", slice(None), id="nb201"),
    pytest.param("nb101", slice(0, 1), id="nb101"),
    pytest.param("nb101", slice(1, 2), id="nb101-second", marks=pytest.mark.slow),
])
def test_every_component_equals_the_pre_change_path(space, which, shared_data):
    cases = [c for c in CASES if c["space"] == space][which]
    scorer = CellScorer(space, old_definitions(cases[0]["proxies"], cases[0]["scores"]), dataset="cifar10", seed=0,
                        measure_memory=False)
    compared = 0
    for case in cases:
        row = scorer.score(case["cell"])
        assert row["status"] == case["status"], case["cell"]
        for column, expected in case["scores"].items():
            old, new = decode(expected), row[column]
            where = f"{space} cell {case['cell']} {column}"
            if math.isnan(old) or math.isinf(old):
                assert (math.isnan(new) and math.isnan(old)) or new == old, where
            else:
                rel = tolerance(column)[0]
                assert new == pytest.approx(old, rel=rel, abs=1e-12), f"{where} ({tolerance(column)[1]})"
            compared += 1
    assert compared == sum(len(c["scores"]) for c in cases) > 0


def test_nb101_gradalign_with_the_old_grouping_is_the_old_score(shared_data):
    from raynas.proxies.gradalign import model_alignment
    from raynas.seeding import derive_seed, seeded

    case = next(c for c in CASES if c["space"] == "nb101")
    scorer = CellScorer("nb101", "gradalign:batch_size=32", dataset="cifar10", seed=0, measure_memory=False)
    index = scorer.space.index_of(case["cell"])
    with seeded(derive_seed(0, "nb101", index)):
        model = scorer.space.build(index, 10)
    (batch,) = scorer._probes.values()
    one_class_per_call = model_alignment(model, batch, "per_sample", max_rows=1, closed_form=False, noise_tol=0.0)
    for column in ("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes"):
        # another CPU than the reference's: the float32 kernels' tolerance
        assert one_class_per_call[column] == pytest.approx(decode(case["scores"][column]),
                                                           rel=tolerance(column)[0], abs=1e-12), column
