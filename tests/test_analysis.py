import math

import numpy as np
import pyarrow as pa
import pytest

from raynas.analysis import add_intrain_ablations, correlation_table, rank_correlation, top_k


def test_perfect_and_reversed_rankings():
    acc = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert rank_correlation([10, 20, 30, 40, 50], acc)["kendall_tau"] == pytest.approx(1.0)
    r = rank_correlation([5, 4, 3, 2, 1], acc)
    assert r["kendall_tau"] == pytest.approx(-1.0) and r["spearman_rho"] == pytest.approx(-1.0)


def test_nan_policies():
    scores = [math.nan, 2.0, 3.0, -math.inf, 5.0]
    acc = [1.0, 2.0, 3.0, 0.5, 5.0]
    worst = rank_correlation(scores, acc, "worst")
    assert worst["n"] == 5 and worst["n_nan"] == 2
    omit = rank_correlation(scores, acc, "omit")
    assert omit["n"] == 3 and omit["kendall_tau"] == pytest.approx(1.0)
    # Cells without accuracy are dropped under both policies.
    assert rank_correlation([1, 2, 3, 4], [1, 2, math.nan, 4])["n"] == 3


def test_a_score_equal_on_every_scored_cell_ranks_nothing():
    """Its τ would be only that of the NaN cells, ranked last (synflow is 0 on every
    TransNAS-Bench-101 normal cell): NaN instead, as for a constant score."""
    acc = [1.0, 2.0, 3.0, 4.0, 5.0]
    for scores in ([0.0, 0.0, 0.0, math.nan, 0.0], [math.nan] * 5, [7.0] * 5):
        r = rank_correlation(scores, acc)
        assert math.isnan(r["kendall_tau"]) and math.isnan(r["spearman_rho"]) and r["n"] == 5
    assert rank_correlation([math.nan, 1.0, 1.0, 2.0, 2.0], acc)["kendall_tau"] > 0  # two values: a ranking


def test_top_k():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    acc = np.array([90.0, 80.0, 95.0, 70.0])
    out = top_k(scores, acc, k=2)
    assert out["top1_accuracy"] == 80.0  # best-scored cell is index 1
    assert out["best_of_top2"] == 80.0 and out["recall_top2"] == 0.0


def test_additive_ablation_and_table():
    results = pa.table({"index": [0, 1, 2, 3], "dataset": ["cifar10"] * 4,
                        "gamma": [1.0, 2.0, 3.0, 4.0], "o": [4.0, 3.0, 2.0, 1.0]})
    results = add_intrain_ablations(results)
    np.testing.assert_allclose(results.column("intrain_additive").to_numpy(), 0.0, atol=1e-12)
    truth = pa.table({"index": pa.array([3, 2, 1, 0], pa.int32()), "cifar10_test": [4.0, 3.0, 2.0, 1.0]})
    rows = {r["score"]: r for r in correlation_table(results, truth, ["gamma", "o"], "cifar10_test")}
    assert rows["gamma"]["kendall_tau"] == pytest.approx(1.0)
    assert rows["o"]["kendall_tau"] == pytest.approx(-1.0)


def test_top_k_needs_a_finite_score():
    """All-NaN scores (every proxy call failed) give no top-k, not the first cell's accuracy."""
    nan = float("nan")
    out = top_k([nan, nan, nan], [91.0, 93.0, 92.0], k=2)
    assert all(math.isnan(v) for v in out.values())
    assert top_k([nan, 1.0, nan], [91.0, 93.0, 92.0], k=2)["top1_accuracy"] == 93.0


def test_format_table_aligns_text_left_and_numbers_right():
    from raynas.analysis import format_table

    lines = format_table([{"need": "a", "origin": "embedded", "n": 3}, {"need": "bbb", "origin": "cache", "n": 12}]).splitlines()
    assert lines[0] == "need  origin     n"
    assert lines[2] == "a     embedded   3"
    assert lines[3] == "bbb   cache     12"
