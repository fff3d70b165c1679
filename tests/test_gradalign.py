import math

import pytest
import torch
from torch import nn

from raynas.probes import ProbeBatch
from raynas.proxies.gradalign import alignment_scores, per_sample_gradients


def test_alignment_hand_values_split_over_tensors():
    # Class 0: g1 = [1,−2,3], g2 = [1,2,−1] → m = sign([2,0,2]) = [1,0,1];
    #   s1·m = 2, s2·m = 0 → 1;   Gram [[3,−1],[−1,3]] → log det = log 8.
    # Class 1: g3 = [−1,−1,−1], g4 = [−2,−3,−1] → m = [−1,−1,−1]; s·m = 3, 3 → 3;
    #   Gram [[3,3],[3,3]] singular → −inf.  Class 2 has one sample: ignored.
    g = torch.tensor([[1., -2, 3], [1, 2, -1], [-1, -1, -1], [-2, -3, -1], [5, 5, 5]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    out = alignment_scores([g[:, :2].reshape(5, 2, 1), g[:, 2:]], labels)
    assert out["gradalign_1"] == pytest.approx(2.0)
    assert out["gradalign_1_per_param"] == pytest.approx(2.0 / 3)
    assert out["gradalign_2"] == -math.inf
    assert out["gradalign_classes"] == 2
    only_class0 = alignment_scores([g[:2]], labels[:2])
    assert only_class0["gradalign_2"] == pytest.approx(math.log(8))


def naive_alignment(g: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """GA-I and GA-II straight from their definitions, class by class, in float64."""
    ga1, ga2 = [], []
    for c in labels.unique():
        rows = g[labels == c].double()
        if len(rows) < 2:
            continue
        s, m = rows.sign(), rows.sum(0).sign()
        ga1.append(float((s @ m).mean()))
        sign, logdet = torch.linalg.slogdet(s @ s.T)
        ga2.append(float(logdet) if sign > 0 and logdet > -0.5 else -math.inf)
    return sum(ga1) / len(ga1), sum(ga2) / len(ga2)


@pytest.mark.parametrize("width", [1, 4, 7, 1000])
def test_classes_of_different_sizes_in_blocks_of_any_width(width):
    """Classes of 4, 3 and 2 samples share the padded (classes × 4) layout; the padding
    rows and the block boundaries must change nothing against the definitions."""
    from raynas.proxies.gradalign import AlignmentSums, SignStream, plan_chunks

    gen = torch.Generator().manual_seed(3)
    g = torch.randn(10, 23, generator=gen)
    g[:, 5] = 0.0  # a parameter the loss does not reach
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 1, 0, 3])  # class 3 has one sample: unused
    (chunk,) = plan_chunks(labels, len(labels))
    assert chunk.sizes == (4, 3, 2)
    sums = AlignmentSums(g.device, 23)
    sums.start_chunk(chunk)
    stream = SignStream(sums, chunk, chunk.slots, width, g)
    rows = g[chunk.rows]
    for a in range(0, 23, 5):  # pieces of 5 columns, split across blocks of ``width``
        stream.write(g, rows[:, a : a + 5])
    stream.flush()
    sums.end_chunk()
    got = sums.scores()
    ga1, ga2 = naive_alignment(g, labels)
    assert got["gradalign_1"] == pytest.approx(ga1, rel=1e-12)
    assert got["gradalign_1_per_param"] == pytest.approx(ga1 / 23, rel=1e-12)
    assert got["gradalign_2"] == pytest.approx(ga2, rel=1e-12)
    assert got["gradalign_classes"] == 3
    assert alignment_scores([g], labels) == got


def test_noise_tensors_count_as_zero_per_sample():
    """A tensor whose max|g| is below noise_tol times the sample's largest |g| adds nothing
    for that sample: held small tensors are zeroed at the end, a large one that turns out
    to be noise raises (model_alignment then holds everything), and the scores are the
    definitions' on the gradients with those entries zeroed."""
    from raynas.proxies.gradalign import HELD_NUMEL, AlignmentSums, NoiseInStreamedTensor, SignStream, plan_chunks

    gen = torch.Generator().manual_seed(5)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    big = torch.randn(6, 40, generator=gen)
    small = torch.randn(6, 8, generator=gen)
    small[[1, 4]] *= 1e-12  # noise for samples 1 and 4 only
    expected = torch.cat([big, small.clone().index_fill_(0, torch.tensor([1, 4]), 0.0)], 1)
    (chunk,) = plan_chunks(labels, len(labels))

    def run(pieces, hold_all=False):
        sums = AlignmentSums(big.device, 48)
        sums.start_chunk(chunk)
        stream = SignStream(sums, chunk, chunk.slots, 7, big, noise_tol=1e-9, hold_all=hold_all)
        for param, piece in pieces:
            stream.write(param, piece[chunk.rows])
        stream.flush()
        sums.end_chunk()
        return sums.scores()

    small_param, large_param = torch.empty(8), torch.empty(HELD_NUMEL + 1)
    got = run([(large_param, big), (small_param, small)])
    ga1, ga2 = naive_alignment(expected, labels)
    assert got["gradalign_1"] == pytest.approx(ga1, rel=1e-12)
    assert got["gradalign_2"] == pytest.approx(ga2, rel=1e-12)
    assert got["gradalign_1"] != pytest.approx(naive_alignment(torch.cat([big, small], 1), labels)[0])
    with pytest.raises(NoiseInStreamedTensor):  # the noise in a tensor already reduced
        run([(small_param, big), (large_param, small)])
    assert run([(small_param, big), (large_param, small)], hold_all=True) == got


def test_model_alignment_zeroes_the_noise_of_a_shift_a_later_bn_removes():
    """conv-BN-conv1x1-BN: the first BN's shift reaches the second BN as a per-channel
    constant, which per-sample BN removes, so its exact per-sample gradient is zero; in
    float32 it is rounding noise. With noise_tol it adds nothing; without, its coin-flip
    signs enter the sums."""
    from raynas.probes import ProbeBatch
    from raynas.proxies import persample
    from raynas.proxies.gradalign import model_alignment

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.Conv2d(6, 6, 1, bias=False),
                          nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    batch = ProbeBatch(torch.randn(12, 3, 8, 8), torch.arange(12) % 3)
    matrix = persample.per_sample_gradients(model, batch.inputs, batch.labels, "per_sample")
    sizes = [p.numel() for p in model.parameters()]
    shift = next(i for i, p in enumerate(model.parameters()) if p is model[1].bias)
    start = sum(sizes[:shift])
    noise = matrix[:, start : start + sizes[shift]]
    assert 0 < float(noise.abs().max()) < 1e-6 * float(matrix.abs().max())  # rounding noise, not zero
    cleaned = matrix.clone()
    cleaned[:, start : start + sizes[shift]] = 0
    with_tol = model_alignment(model, batch, "per_sample", 12, noise_tol=1e-6)
    assert with_tol["gradalign_1"] == pytest.approx(naive_alignment(cleaned, batch.labels)[0], rel=1e-12)
    without = model_alignment(model, batch, "per_sample", 12, noise_tol=0.0)
    assert without["gradalign_1"] == pytest.approx(naive_alignment(matrix, batch.labels)[0], rel=1e-12)


def test_identical_samples_align_perfectly():
    g = torch.randn(1, 50).repeat(6, 1)
    g[:, 0] = 0.0  # a zero entry contributes nothing
    out = alignment_scores([g], torch.zeros(6, dtype=torch.long))
    assert out["gradalign_1"] == pytest.approx(49.0)
    assert out["gradalign_1_per_param"] == pytest.approx(49 / 50)
    assert out["gradalign_2"] == -math.inf  # rank-1 Gram


def test_opposed_samples_cancel():
    g = torch.randn(1, 40)
    out = alignment_scores([torch.cat([g, -g])], torch.zeros(2, dtype=torch.long))
    # Σ g = 0 → m = 0 → no alignment at all.
    assert out["gradalign_1"] == 0.0


def test_needs_a_class_with_two_samples():
    with pytest.raises(ValueError, match="two or more"):
        alignment_scores([torch.randn(3, 4)], torch.tensor([0, 1, 2]))


def tiny_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


@pytest.mark.parametrize("bn", ["per_sample", "eval"])
def test_vmap_gradients_equal_a_per_sample_loop(bn):
    net = tiny_bn_net()
    batch = ProbeBatch(torch.randn(5, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1]))
    grads = per_sample_gradients(net, batch, bn)
    for i in range(5):
        ref = tiny_bn_net()
        ref.train(bn == "per_sample")  # per-sample BN == a batch-1 pass in train mode
        loss = nn.functional.cross_entropy(ref(batch.inputs[i : i + 1]), batch.labels[i : i + 1])
        loss.backward()
        for name, p in ref.named_parameters():
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-4, atol=1e-6)


def test_per_sample_mode_leaves_callers_network_untouched():
    net = tiny_bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    per_sample_gradients(net, ProbeBatch(torch.randn(4, 3, 6, 6), torch.tensor([0, 0, 1, 1])), "per_sample")
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unknown_bn_mode():
    with pytest.raises(ValueError, match="bn"):
        per_sample_gradients(tiny_bn_net(), ProbeBatch(torch.randn(2, 3, 4, 4), torch.tensor([0, 0])), "batch")


@pytest.mark.parametrize("bn", ["per_sample", "eval"])
def test_chunks_and_column_blocks_do_not_change_scores(bn):
    """Whole batch in one vmap call and one column block, vs. chunks of whole classes (at
    most 3 rows) and blocks of 7 columns: per-sample gradients do not depend on the other
    samples in either BN mode, and the sums split exactly over columns."""
    from raynas.proxies.gradalign import model_alignment

    net = tiny_bn_net()
    gen = torch.Generator().manual_seed(4)
    batch = ProbeBatch(torch.randn(10, 3, 6, 6, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2]))
    whole = model_alignment(net, batch, bn, max_rows=10, width=10_000)
    split = model_alignment(net, batch, bn, max_rows=3, width=7)
    reference = alignment_scores(per_sample_gradients(net, batch, bn).values(), batch.labels)
    assert split.keys() == whole.keys() == reference.keys()
    for key in whole:
        assert split[key] == pytest.approx(whole[key], rel=1e-12, abs=1e-12), key
        assert reference[key] == pytest.approx(whole[key], rel=1e-12, abs=1e-12), key
    assert whole["gradalign_classes"] == 3


def test_chunk_plan_packs_whole_classes_largest_first():
    from raynas.proxies.gradalign import plan_chunks

    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 4])  # class 0 and 4 have one sample: unused
    chunks = plan_chunks(labels, max_rows=4)
    assert [c.rows.tolist() for c in chunks] == [[3, 4, 5], [1, 2, 6, 7]]
    assert [c.sizes for c in chunks] == [(3,), (2, 2)]
    (one,) = plan_chunks(labels, max_rows=100)
    assert one.rows.tolist() == [3, 4, 5, 1, 2, 6, 7]
    assert one.sizes == (3, 2, 2)
    # Rows in the padded (classes × 3) layout that the alignment sums read: slot 5 and 8
    # (the third row of each 2-sample class) stay zero.
    assert one.slots.tolist() == [0, 1, 2, 3, 4, 6, 7]


def test_bad_options_are_refused_when_parsed():
    from raynas.proxies.registry import parse_proxy

    with pytest.raises(ValueError, match=r"gradalign bn must be one of \('per_sample', 'eval'\), got 'bogus'"):
        parse_proxy("gradalign:bn=bogus")
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        parse_proxy("gradalign:memory_mb=0")
    assert parse_proxy("gradalign:memory_mb=64").config_dict()["memory_mb"] == 64  # recorded: it groups vmap calls
