"""The launch-lean hot path computes the same numbers as the code before it.

``tests/data/hotpath_reference.json`` holds every component of every proxy on fixed NB201
and NB101 cells, computed by raynas as of the commit it names (before the hot path was
rewritten: one read-back per proxy instead of one per layer, GradAlign over the whole
batch in one vmap call, segment reductions, restores of changed tensors only); the command
that wrote it is in ``benchmarks/hotpath_reference.py``.

Tolerance: relative 1e-9. The new path sums the same terms in another order (a stacked
tensor sum instead of a Python loop, class sums over another blocking), which moves a
float64 result by ~1e-16 relative; GradAlign's sign Gram is exact integer arithmetic
either way. Any real change of a formula moves a score far more than 1e-9.

The exception is GradAlign, whose per-sample gradients are fp32 and are now computed in
another order: the old path ran vmap class by class, the new one takes the whole batch
through one batched backward and a closed form per layer (``raynas.proxies.persample``).
GradAlign reads the *signs* of ~10⁶ gradients, so a rounding difference flips the few that
sit at zero:
- NB201 (relative 1e-6): on four of the five cells nothing flips (equal to ~1e-16); on
  cell 100 GA-I moves by 1e-7 relative.
- NB101 (relative 1e-3): a batched convolution's rounding depends on the batch it runs
  in, per-sample BN on deep 8×8 maps amplifies it, and GA-I moves by ~4e-5 relative.
The second test shows that the reduction itself is unchanged: vmap given the old grouping
(one class per call) reproduces the old scores to 1e-9; the third, that the closed-form
gradients are the vmap ones up to fp32 rounding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from raynas.scoring import CellScorer

REFERENCE = Path(__file__).parent / "data" / "hotpath_reference.json"
CASES = json.loads(REFERENCE.read_text())["cases"]


LOOSE = {("nb101", "gradalign"): 1e-3, ("nb201", "gradalign"): 1e-6}  # see the module doc


def decode(value: float | str) -> float:
    return float(value)


@pytest.mark.parametrize("space", sorted({c["space"] for c in CASES}))
def test_every_component_equals_the_pre_change_path(space, shared_data):
    cases = [c for c in CASES if c["space"] == space]
    scorer = CellScorer(space, cases[0]["proxies"], dataset="cifar10", seed=0, measure_memory=False)
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
                rel = LOOSE.get((space, column.split("_")[0]), 1e-9)
                assert new == pytest.approx(old, rel=rel, abs=1e-12), where
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
    one_class_per_call = model_alignment(model, batch, "per_sample", max_rows=1, closed_form=False)
    for column in ("gradalign_1", "gradalign_1_per_param", "gradalign_2", "gradalign_classes"):
        assert one_class_per_call[column] == pytest.approx(decode(case["scores"][column]), rel=1e-9), column
