"""The DARTS / NAS-Bench-301 space (issue 24): compact arch strings that round-trip, an index
over the whole space within int64, mutation, and networks whose parameter counts are
NAS-Bench-Suite-Zero's for all 725 of its genotypes."""

import ast

import numpy as np
import pytest
import torch

from raynas.spaces import get_space
from raynas.spaces.darts import CELLS_PER_KIND, NUM_CELLS, canonical
from raynas.spaces.darts_network import OPS, DartsNetwork

SPACE = get_space("darts")


def test_the_index_covers_the_space_within_int64():
    assert CELLS_PER_KIND == 1_037_664_180 and NUM_CELLS == CELLS_PER_KIND**2 < 2**63
    rng = np.random.default_rng(0)
    for index in [0, 1, CELLS_PER_KIND, NUM_CELLS - 1, *map(int, rng.integers(0, NUM_CELLS, 200, dtype=np.int64))]:
        assert SPACE.index_of(SPACE.arch_str(index)) == index


def test_a_node_s_two_pairs_in_either_order_are_one_cell():
    table = SPACE.ground_truth().table
    arch = table.column("arch")[0].as_py()
    normal, reduce = ast.literal_eval(arch)
    swapped = [[normal[1], normal[0], *normal[2:]], reduce]
    assert SPACE.index_of(str(swapped)) == SPACE.index_of(arch)
    assert SPACE.arch_str(SPACE.index_of(arch)) == str([list(canonical(tuple(map(tuple, c)))) for c in (normal, reduce)])


@pytest.mark.parametrize("bad", [
    "[[(0, 0)], []]",                                            # too few pairs
    str([[(0, 0), (0, 1)] * 4, [(0, 0), (1, 0)] * 4]),           # node 0 reads input 0 twice
    str([[(0, 0), (2, 0)] + [(0, 0), (1, 0)] * 3, [(0, 0), (1, 0)] * 4]),  # node 0 cannot read node 0
    str([[(0, 7), (1, 0)] * 4, [(0, 0), (1, 0)] * 4]),           # no op 7
    "not a list", "__import__('os')",
])
def test_malformed_arch_strings_name_the_string(bad):
    with pytest.raises(ValueError, match="malformed DARTS arch"):
        SPACE.index_of(bad)


def test_mutation_changes_one_pair_and_stays_in_the_space():
    rng = np.random.default_rng(3)
    for index in map(int, rng.integers(0, NUM_CELLS, 100, dtype=np.int64)):
        child = SPACE.mutate(index, rng)
        nodes = [[{*cell[2 * k: 2 * k + 2]} for cell in SPACE.genes(i) for k in range(4)] for i in (index, child)]
        changed = [(old, new) for old, new in zip(*nodes) if old != new]
        assert child != index and len(changed) == 1  # one node of one cell
        old, new = changed[0]
        assert len(old - new) == len(new - old) == 1  # one of its two pairs
        assert SPACE.index_of(SPACE.arch_str(child)) == child


def test_every_suite_zero_genotype_has_its_params():
    table = SPACE.ground_truth().table
    assert table.num_rows == 725 == len(set(table.column("index").to_pylist()))
    with torch.device("meta"):
        counts = [sum(p.numel() for p in DartsNetwork(*SPACE.genes(int(i))).parameters())
                  for i in table.column("index").to_pylist()]
    assert (np.array(counts) == np.round(np.asarray(table.column("params")) * 1e6).astype(int)).all()


def test_the_whole_space_needs_a_selection():
    from raynas.distributed.driver import select_cells

    with pytest.raises(ValueError, match="darts has 1.08e\\+18 cells, too many to score whole"):
        select_cells("darts", None, None)
    assert select_cells("darts", None, 3) == [0, 1, 2]


def test_a_cell_scores_with_the_data_free_proxies():
    from raynas.scoring import CellScorer

    index = SPACE.ground_truth().table.column("index")[0].as_py()
    row = CellScorer("darts", "intrain:batch_size=4,resolution=16;zen:batch_size=4;mg=meco:probe=gaussian;params"
                     ).score(index)
    assert row["status"] == "ok", row["error"]
    assert np.isfinite(row["zen"]) and np.isfinite(row["mg__meco"])
    refused = CellScorer("darts", "az_nas:batch_size=4").score(index)  # a DARTS cell reads two cells back
    assert refused["status"] == "error" and "no stem and chain of cells" in refused["error"]
    assert row["params"] == round(SPACE.ground_truth().table.column("params")[0].as_py() * 1e6)
    assert np.isfinite(row["intrain"]) and row["intrain"] > 0


def nds_record(normal, reduce, error, width=32, depth=8, concat=(2, 3, 4, 5)):
    """One record in NDS's shape (``net.genotype`` with ``[op, input]`` pairs; the test
    error after each epoch)."""
    return {"net": {"genotype": {"normal": normal, "normal_concat": list(concat), "reduce": reduce,
                                 "reduce_concat": list(concat)}, "width": width, "depth": depth},
            "test_ep_top1": [50.0, 20.0, error], "min_test_top1": error}


def test_nds_records_become_the_darts_ground_truth(tmp_path, embedded_only, caplog):
    import json

    from raynas.cli import main

    a = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
         ["skip_connect", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 2]]
    b = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
         ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]]
    records = [nds_record(a, b, 3.0), nds_record(a, b, 4.0, width=16, depth=20),  # one genotype, twice
               nds_record(b, a, 6.5),
               nds_record([["none", 0]] + a[1:], b, 9.0),                           # an op outside the space
               nds_record(a, b, 5.0, concat=(2, 3, 4, 5, 6))]                       # another cell format
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(records))
    assert main(["data", "import", "nds", str(path)]) == 0
    assert "2 record(s) outside the DARTS space" in caplog.text
    truth = SPACE.ground_truth()
    table = truth.table
    first = SPACE.index_of(str([[(i, OPS.index(op)) for op, i in a], [(i, OPS.index(op)) for op, i in b]]))
    assert table.num_rows == 2 and first in table.column("index").to_pylist()
    assert truth.by_cell("cifar10")[first] == pytest.approx(96.5)  # mean of 97 and 96
    row = next(r for r in table.to_pylist() if r["index"] == first)
    assert row["records"] == 2 and row["width_x_depth"] == "32x8,16x20"
    path.write_text("{not json")
    assert main(["data", "import", "nds", str(path)]) == 2


def test_the_heaviest_cell_has_the_most_parameters():
    with torch.device("meta"):
        def params(index):
            return sum(p.numel() for p in DartsNetwork(*SPACE.genes(index)).parameters())

        heaviest = params(SPACE.heaviest_cell())
        rng = np.random.default_rng(5)
        assert all(params(int(i)) <= heaviest for i in rng.integers(0, NUM_CELLS, 30, dtype=np.int64))
