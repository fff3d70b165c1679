"""Ensembles (raynas.ensemble): rank and log-rank sums, directions, NaN, parsing, tables."""

import math

import numpy as np
import pyarrow as pa
import pytest

from raynas.ensemble import ENSEMBLES, Ensemble, add_ensembles, normalised_rank, parse_ensembles


def test_normalised_rank_orients_and_ranks_nan_last():
    assert normalised_rank([3.0, 1.0, 2.0]).tolist() == [1.0, 1 / 3, 2 / 3]
    assert normalised_rank([3.0, 1.0, 2.0], lower_is_better=True).tolist() == [1 / 3, 1.0, 2 / 3]
    # NaN and -inf share the lowest ranks (average of 1 and 2), below every finite score.
    assert normalised_rank([math.nan, 5.0, -math.inf, 0.0]).tolist() == [1.5 / 4, 1.0, 1.5 / 4, 3 / 4]
    # A lower-is-better NaN is still the worst, not the best.
    assert normalised_rank([math.nan, 5.0, 0.0], lower_is_better=True).tolist() == [1 / 3, 2 / 3, 1.0]
    with pytest.raises(ValueError, match="non-empty"):
        normalised_rank([])


def test_rank_and_logrank_sums_by_hand():
    columns = {"a": [1.0, 3.0, 2.0, 4.0], "b": [40.0, 30.0, 10.0, 20.0]}
    # a's ranks 1,3,2,4 and b's (lower is better) 1,2,4,3, over N = 4.
    rank = Ensemble("e", ("a", "b")).values(columns, lower_is_better=["b"])
    assert rank.tolist() == pytest.approx([2 / 4, 5 / 4, 6 / 4, 7 / 4])
    log = Ensemble("e", ("a", "b"), "logrank").values(columns, lower_is_better=["b"])
    assert log.tolist() == pytest.approx([math.log(1 / 16), math.log(6 / 16), math.log(8 / 16), math.log(12 / 16)])
    # The log-rank sum punishes one poor member more than the rank sum does: ranks (1/4, 1)
    # against (2/4, 2/4) tie under rank, and lose under logrank.
    tie = {"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 3.0, 1.0, 2.0]}
    rank, log = Ensemble("e", ("a", "b")).values(tie), Ensemble("e", ("a", "b"), "logrank").values(tie)
    assert rank[0] == pytest.approx(rank[1]) and log[0] < log[1]


def test_an_ensemble_depends_only_on_scores_not_row_order():
    rng = np.random.default_rng(0)
    columns = {"a": rng.normal(size=50), "b": rng.normal(size=50)}
    perm = rng.permutation(50)
    e = Ensemble("e", ("a", "b"), "logrank")
    assert e.values({k: v[perm] for k, v in columns.items()}).tolist() == e.values(columns)[perm].tolist()


def test_parse_names_combinations_and_builtins():
    assert Ensemble.parse("a+b") == Ensemble("a+b", ("a", "b"), "rank")
    assert Ensemble.parse("mine=logrank: a + b + c") == Ensemble("mine", ("a", "b", "c"), "logrank")
    assert Ensemble.parse("az_nas") is ENSEMBLES["az_nas"]
    assert ENSEMBLES["az_nas"].members == ("az_expressivity", "az_progressivity", "az_trainability", "flops")
    with pytest.raises(ValueError, match="combine must be one of"):
        Ensemble.parse("x=median:a+b")
    with pytest.raises(ValueError, match="distinct"):
        Ensemble.parse("a+a")
    with pytest.raises(ValueError, match="more than once"):
        parse_ensembles(["e=a+b", "e=b+c"])
    with pytest.raises(ValueError, match="one ensemble per request"):  # not one named "recommended,c"
        Ensemble.parse("recommended,c=logrank:a+b")


def test_add_ensembles_appends_columns_and_names_missing_members():
    table = pa.table({"index": [0, 1, 2], "a": [1.0, 2.0, math.nan], "b": [3.0, 1.0, 2.0]})
    out = add_ensembles(table, [Ensemble.parse("s=a+b")])
    assert out.column("s").to_pylist() == pytest.approx([2 / 3 + 1.0, 1.0 + 1 / 3, 1 / 3 + 2 / 3])
    with pytest.raises(ValueError, match=r"needs columns \['c'\]"):
        add_ensembles(table, [Ensemble.parse("t=a+c")])
    assert add_ensembles(table, [Ensemble.parse("t=a+c")], skip_incomplete=True).column_names == table.column_names
    with pytest.raises(ValueError, match="already has a column"):
        add_ensembles(table, [Ensemble.parse("a=a+b")])


def _scored_run(tmp_path, proxies: str, cells: list[int]):
    from raynas.results import check_or_write_run_config, part_name, write_part_atomic
    from raynas.rows import row_schema, rows_to_table
    from raynas.scoring import CellScorer

    out = tmp_path / "run"
    out.mkdir()
    scorer = CellScorer("nb201", proxies)
    rows = list(scorer.iter_scores(cells))
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, part_name(cells))
    check_or_write_run_config(out, scorer.config(), {"raynas": "test"}, columns=scorer.spec.column_roles())
    return out, rows


def test_report_rows_for_asked_and_builtin_ensembles_from_a_directory_and_an_export(tmp_path, capsys):
    from scipy.stats import kendalltau

    from raynas.analysis import correlation_report
    from raynas.cli import main
    from raynas.export import export_results
    from raynas.spaces import get_space

    cells = [0, 1, 2, 5, 9, 11, 13714]
    out, rows = _scored_run(tmp_path, "params;flops;mine=params", cells)
    report = {r["score"]: r for r in correlation_report(out, ensembles=["both=logrank:params+flops"])}
    assert "both" in report and "az_nas" not in report  # a built-in needs all its columns
    # By hand: the log-rank sum of two columns that rank alike ranks like either.
    truth = get_space("nb201").ground_truth().table.to_pandas().set_index("index")
    acc = truth.loc[cells, "cifar10_test"].to_numpy()
    expected = kendalltau(Ensemble("b", ("params", "flops"), "logrank").values(
        {"params": [r["params"] for r in rows], "flops": [r["flops"] for r in rows]}), acc).statistic
    assert report["both"]["kendall_tau"] == pytest.approx(expected)
    exported = tmp_path / "scores.parquet"
    export_results(out, exported)
    assert main(["report", str(exported), "--ensemble", "both=logrank:params+flops"]) == 0
    assert "both" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"needs columns \['zen'\]"):
        correlation_report(out, ensembles=["x=params+zen"])


def test_report_notes_explain_derived_rows_ensembles_and_nan():
    from raynas.analysis import report_notes

    rows = [{"score": "intrain", "n_nan": 3}, {"score": "intrain_additive", "n_nan": 3}, {"score": "mine", "n_nan": 0},
            {"score": "az_nas", "n_nan": 0}]
    notes = "\n".join(report_notes(rows, "omit", 10, ["mine=logrank:a+b"]))
    assert "degenerate cells" in notes and "left out" in notes
    assert "intrain_additive: InTrain's additive ablation" in notes
    assert "mine: ensemble, the logrank sum of a + b" in notes and "az_nas: built-in ensemble, AZ-NAS" in notes
    assert "n_nan" not in "\n".join(report_notes([{"score": "flops", "n_nan": 0}]))


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_builtin_ensembles_proxies_request_yields_their_members(name):
    """Each built-in names the --proxies request that scores its members: resolving it must
    produce every member as a score column, so a user who scores with it can report it."""
    from raynas.spec import ScoringSpec

    ensemble = ENSEMBLES[name]
    roles = ScoringSpec.resolve("nb201", ensemble.proxies).column_roles()
    assert not ensemble.missing(c for c, r in roles.items() if r["role"] == "score")


def test_recommended_is_the_second_round_choice_and_the_first_stays_reachable():
    assert Ensemble.parse("recommended").members == (
        "mg__meco", "mg__meco_opt", "synflow", "az_expressivity", "az_trainability")
    assert Ensemble.parse("recommended").combine == "logrank"
    assert Ensemble.parse("first_round").members == ("mg__meco", "mg__meco_opt", "o")
