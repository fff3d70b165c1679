"""TransNAS-Bench-101 micro (issue 24): the space's order and arch strings, degenerate cells
as the benchmark's own results show them, the networks' parameter counts against
NAS-Bench-Suite-Zero's for every cell and task it lists, tasks as datasets, and the probes
and loss of dense tasks."""

import ast

import numpy as np
import pytest
import torch

from raynas.datasets import TNB101_TASKS, dataset_info
from raynas.probes import ProbeBatch, gaussian_batch
from raynas.proxies.base import probe_loss
from raynas.scoring import CellScorer
from raynas.spaces import get_space
from raynas.spaces.tnb101 import NUM_CELLS, TASKS, code_of, has_input_output_path, parse_arch
from raynas.spaces.tnb101_network import Encoder, TNB101MicroNetwork

SPACE = get_space("tnb101_micro")


def test_order_and_arch_strings_round_trip():
    assert len(SPACE) == NUM_CELLS == 4096
    assert code_of(0) == (0,) * 6 and code_of(1) == (0, 0, 0, 0, 0, 1) and code_of(4095) == (3,) * 6
    assert SPACE.arch_str(1060) == "64-41414-1_00_210"
    for index in (0, 1, 534, 1060, 2047, 4095):
        arch = SPACE.arch_str(index)
        short = arch.removeprefix("64-41414-")
        assert SPACE.index_of(arch) == SPACE.index_of(short) == SPACE.index_of(str(code_of(index))) == index


@pytest.mark.parametrize("bad", ["64-41414-4_00_000", "1_0_0000", "(1, 2, 3)", "1_00_21", "", "64-41414-basic"])
def test_malformed_arch_strings_name_the_string(bad):
    with pytest.raises(ValueError, match="malformed TransNAS-Bench-101 micro arch"):
        SPACE.index_of(bad)


def test_the_ground_truth_is_every_cell_and_task_in_the_space_order():
    truth = SPACE.ground_truth()
    assert truth.table.column("index").to_pylist() == list(range(NUM_CELLS))
    assert [parse_arch(a) for a in truth.table.column("arch").to_pylist()[:2]] == [code_of(0), code_of(1)]
    for task in TASKS:
        assert len(truth.by_cell(task)) == NUM_CELLS


def test_degenerate_cells_are_those_the_benchmark_trained_to_one_constant():
    # A cell without a non-zero path from node 0 to node 3 makes the whole chain ignore its
    # input, so every such network was trained to the same constant prediction: on the tasks
    # without a pixel-level reconstruction all 169 share one value, and on class_scene every
    # one of them is below every network that sees its input.
    truth = SPACE.ground_truth()
    degenerate = np.array([SPACE.is_degenerate(i) for i in range(NUM_CELLS)])
    assert degenerate.sum() == 169
    assert SPACE.is_degenerate(0) and not SPACE.is_degenerate(4095)
    assert not has_input_output_path((1, 0, 0, 0, 0, 1)) and has_input_output_path((1, 0, 1, 0, 0, 1))
    for task in ("class_scene", "class_object", "jigsaw", "segmentsemantic"):
        values = np.asarray(truth.table.column(task))
        assert len(set(values[degenerate])) == 1, task
    scene = np.asarray(truth.table.column("class_scene"))
    assert scene[degenerate].max() < scene[~degenerate].min()


def test_every_listed_cell_has_suite_zeros_params_on_every_task(shared_data):
    # A network is the encoder (its parameters depend on the cell alone) and the task's
    # decoder (on the task alone): each of the 711 cells' encoders and each task's decoder
    # is counted once, on the meta device, and every (cell, task) sum must equal Suite-Zero's.
    import pandas as pd

    peers = pd.read_parquet(shared_data / "tnb101" / "peer_scores_suite_zero_micro.parquet")
    with torch.device("meta"):
        encoder = {arch: sum(p.numel() for p in Encoder(parse_arch(arch)).parameters())
                   for arch in peers["arch"].unique()}
        decoder = {task: sum(p.numel() for p in TNB101MicroNetwork(code_of(0), task, dataset_info(task).num_classes)
                             .decoder.parameters()) for task in TASKS}
    ours = peers["arch"].map(encoder) + peers["task"].map(decoder)
    assert len(peers) == 711 * 7
    assert (np.round(ours / 1e6, 6) == np.round(peers["params"], 6)).all()


def test_whole_networks_match_the_sum_of_their_parts():
    with torch.device("meta"):
        for ops in [(1, 0, 0, 2, 1, 0), (3, 3, 3, 3, 3, 3)]:
            net = TNB101MicroNetwork(ops, "jigsaw", 1000)
            parts = sum(p.numel() for p in Encoder(ops).parameters()) + sum(p.numel() for p in net.decoder.parameters())
            assert sum(p.numel() for p in net.parameters()) == parts


@pytest.mark.parametrize("task,shape", [("class_scene", (2, 63)), ("jigsaw", (2, 1000)), ("room_layout", (2, 9)),
                                        ("segmentsemantic", (2, 17, 64, 64)), ("autoencoder", (2, 3, 64, 64))])
def test_each_decoder_gives_the_tasks_output(task, shape):
    net = TNB101MicroNetwork((3, 1, 2, 1, 3, 1), task, dataset_info(task).num_classes)
    size = 96 if task == "jigsaw" else 64
    assert tuple(net(torch.randn(2, 3, size, size)).shape) == shape
    features = net.forward_features(torch.randn(2, 3, size, size))
    assert features.shape[1] == 512 and features.shape[0] == (18 if task == "jigsaw" else 2)


def test_jigsaw_tiles_are_cut_row_major_and_kept_per_image():
    net = TNB101MicroNetwork((1,) * 6, "jigsaw", 1000)
    image = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    tiles = net.stem[0](image)
    assert tiles.shape == (18, 3, 2, 2)
    assert torch.equal(tiles[0], image[0, :, :2, :2]) and torch.equal(tiles[1], image[0, :, :2, 2:4])
    assert torch.equal(tiles[3], image[0, :, 2:4, :2]) and torch.equal(tiles[9], image[1, :, :2, :2])
    with pytest.raises(ValueError, match="does not split into a 3x3 grid"):
        net(torch.randn(2, 3, 64, 64))


def test_dense_probes_draw_the_same_images_and_a_target_of_the_output_shape():
    plain = gaussian_batch(4, 16, 3, seed=7)
    dense = gaussian_batch(4, 16, 3, seed=7, target="pixels")
    values = gaussian_batch(4, 16, 9, seed=7, target="values")
    assert torch.equal(plain.inputs, dense.inputs) and torch.equal(plain.labels, dense.labels)
    assert plain.targets is None and dense.targets.shape == (4, 3, 16, 16) and values.targets.shape == (4, 9)
    assert abs(float(dense.targets.mean())) < 0.2 and 0.8 < float(dense.targets.std()) < 1.2
    with pytest.raises(ValueError, match="unknown probe target"):
        gaussian_batch(4, 16, 3, seed=7, target="boxes")


def test_the_loss_is_cross_entropy_for_classes_and_mse_against_the_target_otherwise():
    outputs = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    labels = torch.tensor([1, 1])
    expected_ce = (np.log(1 + np.exp(-1.0)) + np.log(1 + np.exp(2.0))) / 2
    assert float(probe_loss(outputs, ProbeBatch(outputs, labels))) == pytest.approx(expected_ce)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert float(probe_loss(outputs, ProbeBatch(outputs, labels, target))) == pytest.approx((1 + 0 + 4 + 0) / 4)


def test_tasks_are_datasets_of_this_space_only():
    assert set(TASKS) == set(TNB101_TASKS) and dataset_info("class-scene").name == "class_scene"
    with pytest.raises(ValueError, match="'class_scene' is a task of the tnb101_micro space, not of nb201"):
        CellScorer("nb201", "params", dataset="class_scene")
    with pytest.raises(ValueError, match="scores its own tasks .* not dataset 'cifar10'"):
        CellScorer("tnb101_micro", "params", dataset="cifar10")
    with pytest.raises(ValueError, match="builds one task's network"):
        SPACE.build(0, 10)
    with pytest.raises(ValueError, match="'vkdnw' reads class probabilities.*normal's outputs are not classes"):
        CellScorer("tnb101_micro", "vkdnw", dataset="normal")
    with pytest.raises(FileNotFoundError, match="class_scene images are not available"):
        CellScorer("tnb101_micro", "snip", dataset="class_scene")


@pytest.mark.parametrize("task", ["room_layout", "segmentsemantic"])
def test_a_cell_scores_with_the_data_free_proxies(task):
    proxies = "intrain:batch_size=4,resolution=32;synflow;params;flops:resolution=32;mg=meco:probe=gaussian,batch_size=2"
    scorer = CellScorer("tnb101_micro", proxies, dataset=task, threads=1)
    row = scorer.score("64-41414-1_02_333")
    assert row["status"] == "ok", row["error"]
    assert row["dataset"] == task and row["arch"] == "64-41414-1_02_333"
    net = SPACE.for_dataset(task).build(SPACE.index_of("1_02_333"), dataset_info(task).num_classes)
    assert row["params"] == sum(p.numel() for p in net.parameters())
    assert np.isfinite(row["intrain"]) and row["intrain"] > 0 and row["o"] > 0
    assert np.isfinite(row["mg__meco"]) and row["synflow"] >= 0
    degenerate = scorer.score(0)  # structural proxies still score it
    assert degenerate["status"] == "degenerate" and np.isnan(degenerate["intrain"]) and degenerate["params"] > 0
