"""NAS-Bench-Macro (issue 24): the space's order, arch strings and mutation, and networks
whose parameter counts and FLOPs are the benchmark's for every one of the 6,561 cells."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from raynas.spaces import get_space
from raynas.spaces.nb_macro import LAYERS, NUM_CELLS, OPS, code_of, parse_arch
from raynas.spaces.nb_macro_network import MacroNetwork

SPACE = get_space("nb_macro")


def params_and_macs_per_module(choices: tuple[int, ...]) -> tuple[dict[str, int], dict[str, int]]:
    """Parameters and multiply-accumulates (32×32, batch 1) of each top-level part of one
    network — its stem, each of its eight layers, its head and classifier — built on the
    meta device (shapes only)."""
    with torch.device("meta"):
        model = MacroNetwork(choices).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
    parts = {"stem": model.stem, "head": model.head, "classifier": model.classifier,
             **{f"cells.{i}": layer for i, layer in enumerate(model.cells)}}
    params = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    counts = counter.get_flop_counts()
    macs = {name: sum(counts.get(f"MacroNetwork.{name}", {}).values()) // 2 for name in parts}
    return params, macs


def test_order_codes_and_arch_strings_round_trip():
    assert len(SPACE) == NUM_CELLS == 6561
    assert code_of(0) == "00000000" and code_of(5) == "00000012" and code_of(6560) == "22222222"
    assert SPACE.arch_str(5) == "id+id+id+id+id+id+ir_3x3_t3+ir_5x5_t6"
    for index in (0, 1, 5, 100, 3280, 6560):
        assert SPACE.index_of(SPACE.arch_str(index)) == index == SPACE.index_of(code_of(index)) == parse_arch(code_of(index))
    assert not any(SPACE.is_degenerate(i) for i in range(0, NUM_CELLS, 97))


@pytest.mark.parametrize("bad", ["00000003", "id+id", "id+id+id+id+id+id+id+ir_7x7", "", "0000000"])
def test_malformed_arch_strings_name_the_string(bad):
    with pytest.raises(ValueError, match="malformed NAS-Bench-Macro arch"):
        SPACE.index_of(bad)


@pytest.mark.parametrize("bad", [-1, 6561, 2.5, True])
def test_bad_indices_are_refused(bad):
    with pytest.raises(ValueError, match="out of range"):
        SPACE.arch_str(bad)


def test_mutation_changes_exactly_one_layer():
    rng = np.random.default_rng(0)
    for index in rng.integers(NUM_CELLS, size=50):
        child = SPACE.mutate(int(index), rng)
        assert sum(a != b for a, b in zip(code_of(int(index)), code_of(child))) == 1


def test_the_ground_truth_is_every_cell_in_the_space_order():
    table = SPACE.ground_truth().table
    assert table.column("index").to_pylist() == list(range(NUM_CELLS))
    assert table.column("arch").to_pylist()[:3] == ["00000000", "00000001", "00000002"]
    accuracy = SPACE.ground_truth().by_cell("cifar10")
    assert len(accuracy) == NUM_CELLS and 40 < min(accuracy.values()) < max(accuracy.values()) < 95


def test_every_cell_has_the_benchmark_params_and_flops():
    # A network is a chain of parts whose shapes depend only on their position and choice, so
    # its parameters and MACs are the sum of its parts'. The three uniform networks give every
    # (position, choice) part; every cell's sum is then checked against the benchmark, and
    # whole networks built from scratch confirm the sum on a sample.
    parts = [params_and_macs_per_module((choice,) * LAYERS) for choice in range(len(OPS))]
    base_params = sum(parts[0][0][name] for name in ("stem", "head", "classifier"))
    base_macs = sum(parts[0][1][name] for name in ("stem", "head", "classifier"))
    assert all(parts[c][0][n] == parts[0][0][n] for c in (1, 2) for n in ("stem", "head", "classifier"))
    layer_params = np.array([[parts[c][0][f"cells.{i}"] for c in range(len(OPS))] for i in range(LAYERS)])
    layer_macs = np.array([[parts[c][1][f"cells.{i}"] for c in range(len(OPS))] for i in range(LAYERS)])
    table = SPACE.ground_truth().table
    codes = np.array([[int(d) for d in code] for code in table.column("arch").to_pylist()])
    rows = np.arange(LAYERS)
    params = base_params + layer_params[rows, codes].sum(axis=1)
    macs = base_macs + layer_macs[rows, codes].sum(axis=1)
    assert (params == np.asarray(table.column("params"))).all()
    assert (macs == np.asarray(table.column("flops"))).all()
    for index in np.random.default_rng(1).choice(NUM_CELLS, 8, replace=False):
        whole_params, whole_macs = params_and_macs_per_module(SPACE.choices(int(index)))
        assert sum(whole_params.values()) == params[index] and sum(whole_macs.values()) == macs[index]


def test_a_cell_scores_with_the_data_free_proxies():
    from raynas.scoring import CellScorer

    row = CellScorer("nb_macro", "intrain:batch_size=8,resolution=16;synflow;zen:batch_size=4;az_nas:batch_size=8;"
                                 "mg=meco:probe=gaussian;params;flops").score(5)
    assert row["status"] == "ok", row["error"]
    assert row["params"] == SPACE.ground_truth().table.column("params")[5].as_py()
    assert row["flops"] == SPACE.ground_truth().table.column("flops")[5].as_py()
    assert np.isfinite(row["intrain"]) and row["intrain"] > 0
    assert all(np.isfinite(row[c]) for c in ("zen", "az_expressivity", "az_progressivity", "mg__meco"))
    assert not np.isnan(row["az_trainability"])  # −inf where an identity block's definition gives it, as on NB201
