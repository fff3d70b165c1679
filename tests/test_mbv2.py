"""The mbv2 space (issue 24: InTrain-NAS on the MobileNetV2 ImageNet space): structure
strings, the peers' FLOPs count and mutation, networks, hash-named cells, and the pool
search under a FLOPs budget — scored through Ray, killed, and resumed."""

import hashlib
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from raynas.scoring import CellScorer
from raynas.search import Evaluator, Fitness, run_search
from raynas.spaces import get_space
from raynas.spaces.mbv2 import INITIAL, MAX_LAYERS
from raynas.spaces.mbv2_network import MBV2Network
from raynas.spaces.mbv2_structure import (IDW_TYPES, candidates, format_structure, layer_count, mutate,
                                          parse_block, parse_structure, zen_flops)
from raynas.spec import default_dataset

SPACE = get_space("mbv2")
ZENNET_400M = ("SuperConvK3BNRELU(3,16,2,1)SuperResIDWE1K7(16,40,2,40,1)SuperResIDWE1K7(40,64,2,64,1)"
               "SuperResIDWE4K7(64,96,2,96,5)SuperResIDWE2K7(96,224,2,224,5)SuperConvK1BNRELU(224,2048,1,1)")


def params_and_macs(structure: str) -> tuple[int, int]:
    with torch.device("meta"):
        net = MBV2Network(parse_structure(structure)).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(torch.zeros(1, 3, 224, 224))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2


def test_a_tiny_structure_s_flops_by_hand():
    # At 224: stem conv 3·8·9·112² + BN 8·112²; one E1K3 sub-layer at 112² (8 → 8, hidden 8):
    # part 1 = 1×1 (8·8) + BN + 3×3 dw (8·9) + BN + 1×1 + BN + its projection shortcut (8·8 + 8),
    # part 2 the same without a shortcut; head 1×1 8 → 2048 + BN; classifier 2048·1000.
    r2 = 112**2
    stem = 3 * 8 * 9 * r2 + 8 * r2
    part = (8 * 8 + 8 + 8 * 9 + 8 + 8 * 8 + 8) * r2
    head = 8 * 2048 * r2 + 2048 * r2
    expected = stem + part + (8 * 8 + 8) * r2 + part + head + 2048 * 1000
    blocks = parse_structure("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,8,1,8,1)SuperConvK1BNRELU(8,2048,1,1)")
    assert zen_flops(blocks) == expected == 242_591_744


def test_the_peers_initial_and_published_structures():
    # MasterNet's own figures for the 450M search's initial structure (an upstream clone,
    # no SE): get_FLOPs(224) 162,396,776; 2,824,264 parameters; 159,334,080 conv/linear MACs.
    assert zen_flops(parse_structure(INITIAL)) == 162_396_776
    assert params_and_macs(INITIAL) == (2_824_264, 159_334_080)
    assert zen_flops(parse_structure(ZENNET_400M)) == pytest.approx(399_976_216)  # ZenNet-400M, under its budget
    assert layer_count(parse_structure(INITIAL)) == 6 and layer_count(parse_structure(ZENNET_400M)) == 14
    assert format_structure(parse_structure(ZENNET_400M)) == ZENNET_400M


@pytest.mark.parametrize("bad,message", [
    ("SuperConvK3BNRELU(3,8,2,1)SuperFoo(8,8,1,1)SuperConvK1BNRELU(8,2048,1,1)", "malformed mbv2|mbv2 block"),
    ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(16,8,1,8,1)SuperConvK1BNRELU(8,2048,1,1)", "takes 16 channels"),
    ("SuperConvK3BNRELU(4,8,2,1)SuperResIDWE1K3(8,8,1,8,1)SuperConvK1BNRELU(8,2048,1,1)", "must start with"),
    ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,8,1,8,1)SuperConvK1BNRELU(8,1024,1,1)", "must end with"),
    ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,8,3,8,1)SuperConvK1BNRELU(8,2048,1,1)", "stride must be 1 or 2"),
    ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,8,1,8)SuperConvK1BNRELU(8,2048,1,1)", "with 4 .conv. or 5"),
    ("", "malformed mbv2 structure"),
])
def test_bad_structures_name_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        SPACE.index_of(bad)


def test_candidates_keep_the_peers_repetition_of_early_block_types():
    # gen_search_space appends type j's candidates to the list it stored after type j - 1,
    # then stores a new list of every type so far: a first-type (E1K3) candidate is in all 12
    # stored lists, type j's (j >= 2) in 14 - j of them (E6K7, the 12th: twice).
    block = parse_block("SuperResIDWE6K3(32,48,2,32,1)")
    drawn = Counter(candidates(block))
    for j, kind in enumerate(IDW_TYPES, start=1):
        of_kind = [c for c in drawn if c.startswith(kind + "(")]
        assert of_kind and {drawn[c] for c in of_kind} == {12 if j == 1 else 14 - j}, kind
    assert all(parse_block(c).c_in == 32 and parse_block(c).stride == 2 for c in drawn)
    assert candidates(parse_block("SuperConvK1BNRELU(128,2048,1,1)")) == ["SuperConvK1BNRELU(128,2048,1,1)"]


def test_mutation_is_a_function_of_the_generator_and_keeps_structures_valid():
    start = parse_structure(INITIAL)
    a = [mutate(start, np.random.default_rng(5), 2) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng, blocks = np.random.default_rng(0), start
    for _ in range(200):
        child = mutate(blocks, rng, 2)
        parse_structure(format_structure(child))  # chains, strides and ends still valid
        assert all(b.layers < 6 for b in child if not b.is_conv)
        assert sum(x != y for x, y in zip(blocks, child)) <= 2 + len(child) or len(child) != len(blocks)
        blocks = child if zen_flops(child) <= 450e6 else blocks


def test_cells_are_named_by_a_hash_of_their_canonical_string():
    index = SPACE.index_of(ZENNET_400M.replace(")S", ") S"))  # whitespace is not part of a structure
    assert index == int.from_bytes(hashlib.sha256(ZENNET_400M.encode()).digest()[:8], "big") >> 1
    assert SPACE.arch_str(index) == ZENNET_400M and not SPACE.is_degenerate(index)
    with pytest.raises(ValueError, match="not a structure this process has seen"):
        SPACE.arch_str(12345)
    assert SPACE.structure_flops(index) == pytest.approx(399_976_216) and SPACE.layers(index) == 14


def test_mbv2_scores_on_imagenet_s_shape_only():
    assert default_dataset("mbv2") == "imagenet" and default_dataset("nb201") == "cifar10"
    assert default_dataset("tnb101_micro") == "class_scene"
    with pytest.raises(ValueError, match="scores its own tasks .imagenet."):
        CellScorer("mbv2", "params")
    with pytest.raises(ValueError, match="'imagenet' is a task of the mbv2 space"):
        CellScorer("nb201", "params", dataset="imagenet")
    row = CellScorer("mbv2", "intrain:batch_size=4,resolution=64;params", dataset="imagenet", threads=1).score(INITIAL)
    assert row["status"] == "ok", row["error"]
    assert row["params"] == 2_824_264 and row["intrain"] > 0 and row["arch"] == INITIAL


class CountingEvaluator(Evaluator):
    """A fitness from the structure alone (its parameter count), counting what it is asked."""

    def __init__(self, space):
        self.space, self.asked = space, []

    def scores(self, cells):
        self.asked.extend(cells)
        return {c: {"params": float(sum(p.numel() for p in self._meta(c).parameters()))} for c in cells}

    def _meta(self, cell):
        with torch.device("meta"):
            return MBV2Network(self.space.blocks(cell))


def test_the_pool_search_keeps_to_its_budget_and_replays_exactly():
    def search(evaluator):
        return run_search("pool", SPACE, evaluator, Fitness.parse("params"), seed=3, budget=40, population=12,
                          generation=4, flops_max=450e6)

    first = CountingEvaluator(SPACE)
    state = search(first)
    assert len(state.order) == 40 == len(set(first.asked))
    assert all(SPACE.structure_flops(c) <= 450e6 and SPACE.layers(c) <= MAX_LAYERS for c in state.order)
    best = state.best()
    assert state.rows[best]["params"] == max(r["params"] for r in state.rows.values())
    assert search(CountingEvaluator(SPACE)).order == state.order  # a function of seed and scores


def test_sample_and_evolution_refuse_a_space_without_enumeration():
    with pytest.raises(ValueError, match="no enumeration to draw cells from: use --strategy pool"):
        run_search("evolution", SPACE, CountingEvaluator(SPACE), Fitness.parse("params"), seed=0)


@pytest.mark.ray
def test_an_intrain_nas_search_under_450m_resumes_in_a_new_process_without_rescoring(local_ray, tmp_path, capsys):
    # Through the actors (cells travel as structure strings). The second search starts from
    # an empty registry of structures, as a new process would after a kill (parts are
    # committed whole, so a killed search is a shorter one: tests/test_search.py kills one):
    # it replays the mutations, reads the first 8 cells back and scores 8 more.
    from raynas.cli import main
    from raynas.spaces.mbv2 import MBV2Space

    out = tmp_path / "search"
    args = ["search", "mbv2", "--strategy", "pool", "--fitness", "intrain", "--proxies",
            "intrain:batch_size=4,resolution=64", "--flops-max", "450M", "--out", str(out), "--population", "6",
            "--generation", "4", "--seed", "1", "--max-actors", "1"]
    assert main([*args, "--budget", "8"]) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    MBV2Space._known.clear()
    assert main([*args, "--budget", "16"]) == 0
    printed = capsys.readouterr().out
    assert "16 cells scored" in printed and "chosen cell" in printed
    parts = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert all(parts[name] == stamp for name, stamp in first.items())  # read back, never rewritten
    rows = [r for p in out.glob("part-*.parquet") for r in pq.read_table(p, columns=["index", "arch"]).to_pylist()]
    assert len(rows) == len({r["index"] for r in rows}) == 16  # every cell once, the budget exactly
    for row in rows:  # each row's index names its structure, which is within the budget
        assert SPACE.index_of(row["arch"]) == row["index"] and SPACE.structure_flops(row["index"]) <= 450e6
    history = pq.read_table(out / "_search" / "pool-intrain-seed1.parquet")
    assert history.num_rows == 16 and history.column("arch").to_pylist()[0].startswith("SuperConvK3BNRELU(3,")
