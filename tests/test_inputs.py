"""Bad input is refused with one line naming it, before Ray starts and before anything is
written (issue 10, the cases fixed so far)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raynas.cli import main, parse_cells


def refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raynas: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_empty_or_reversed_cell_ranges(tmp_path, capsys):
    with pytest.raises(ValueError, match="'5:2' selects nothing"):
        parse_cells("5:2")
    out = tmp_path / "run"
    assert "'5:5' selects nothing" in refused(capsys, ["score", "nb201", "--cells", "5:5", "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("request_, allowed", [
    ("gradalign:bn=bogus", "gradalign bn must be one of ('per_sample', 'eval'), got 'bogus'"),
    ("intrain:layers=bogus", "intrain layers must be one of ['conv', 'conv_linear'], got 'bogus'"),
    ("intrain:grad_params=some", "intrain grad_params must be one of ('multi_element', 'all', 'weights')"),
    ("naswot:relus=few", "naswot relus must be one of ('reachable', 'all'), got 'few'"),
])
def test_bad_option_values_name_the_allowed_ones(tmp_path, capsys, request_, allowed):
    out = tmp_path / "run"
    assert allowed in refused(capsys, ["score", "nb201", "--proxies", request_, "--out", str(out), "--limit", "2"])
    assert not out.exists()


def test_real_data_proxy_on_a_dataset_without_images(tmp_path, capsys):
    out = tmp_path / "run"
    err = refused(capsys, ["score", "nb201", "--proxies", "gradalign", "--dataset", "imagenet16-120",
                           "--out", str(out), "--limit", "2"])
    assert "no probe images for dataset 'imagenet16-120'" in err
    assert not out.exists()


def test_unusable_output_paths(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a directory")
    assert "is a file, not a directory" in refused(capsys, ["score", "nb201", "--proxies", "params", "--out",
                                                            str(a_file), "--limit", "2"])
    assert "cannot create it" in refused(capsys, ["score", "nb201", "--proxies", "params", "--out",
                                                  str(a_file / "sub"), "--limit", "2"])
    assert a_file.read_text() == "not a directory"


def test_ctrl_c_says_what_is_committed_and_how_to_resume(tmp_path, capsys, monkeypatch):
    from raynas.distributed import driver
    from raynas.results import part_name, write_part_atomic
    from raynas.rows import row_schema, rows_to_table
    from raynas.scoring import CellScorer

    out = tmp_path / "run"
    out.mkdir()
    scorer = CellScorer("nb201", "params")
    rows = list(scorer.iter_scores([1, 2, 3]))
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, part_name([1, 2, 3]))

    def interrupted(opts):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run_scoring", interrupted)
    assert main(["score", "nb201", "--proxies", "params", "--out", str(out), "--limit", "10"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"raynas: interrupted: 3 cells committed in {out}; rerun the same command to resume"
    assert Path(out / part_name([1, 2, 3])).is_file()


def test_cells_by_arch_string_and_from_a_file(tmp_path):
    from raynas.distributed.driver import select_cells
    from raynas.spaces import get_space

    arch = get_space("nb201").arch_str(1462)
    assert parse_cells(f"0:2,7,{arch}") == [0, 1, 7, arch]
    listing = tmp_path / "cells.txt"
    listing.write_text(f"# my picks\n5\n\n{arch}\n9\n")
    assert select_cells("nb201", parse_cells(f"@{listing}"), None) == [5, 1462, 9]
    with pytest.raises(ValueError, match="no such file"):
        parse_cells(f"@{tmp_path / 'missing.txt'}")
    with pytest.raises(ValueError, match="cannot read '1:2:3'"):
        parse_cells("1:2:3")


def test_sample_draws_cells_with_known_accuracy(capsys, tmp_path):
    from raynas.cli import sample_with_accuracy

    drawn = sample_with_accuracy("nb201", "cifar100", 20, seed=3)
    assert len(set(drawn)) == 20 and drawn == sorted(drawn) and drawn == sample_with_accuracy("nb201", "cifar100", 20, 3)
    assert drawn != sample_with_accuracy("nb201", "cifar100", 20, 4)
    out = str(tmp_path / "run")
    assert "--sample must be in 1..15625" in refused(capsys, ["score", "nb201", "--sample", "0", "--out", out])
    assert "give one" in refused(capsys, ["score", "nb201", "--sample", "3", "--cells", "0:3", "--out", out])
    assert not (tmp_path / "run").exists()


def test_report_without_any_known_accuracy_says_so(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raynas.analysis import correlation_report
    from raynas.results import check_or_write_run_config, part_name, write_part_atomic
    from raynas.rows import row_schema, rows_to_table
    from raynas.scoring import CellScorer

    out = tmp_path / "run"
    out.mkdir()
    scorer = CellScorer("nb201", "params")
    rows = list(scorer.iter_scores([1, 2, 3]))
    write_part_atomic(rows_to_table(rows, row_schema(scorer.columns, scorer.config())), out, part_name([1, 2, 3]))
    check_or_write_run_config(out, scorer.config(), {"raynas": "test"})
    other = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"index": [100, 101], "cifar10_test": [90.0, 91.0]}), other)
    with pytest.raises(ValueError, match="none of the 3 cells .* has a known nb201 cifar10 accuracy"):
        correlation_report(out, ground_truth=other)
    assert correlation_report(out)[0]["n"] == 3  # the shipped table knows them
