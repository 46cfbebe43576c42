from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import associative_embedding as ae
from tests.conftest import DEVICES, assert_terms_and_grads_close
from tests.reference_loss import higherhrnet_single_tag_loss, reference_terms

# the random people of these tests put many joints off the map on purpose (they check the
# masking); the warning for keypoints in the wrong units is tested on its own below
pytestmark = pytest.mark.filterwarnings("ignore:.*labelled joints of keypoints lie outside")

MODES = list(itertools.product(["exp", "margin"], ["reference", "paper"]))


def make_batch(rng, b=3, n=4, k=5, h=9, w=11, d=None, dtype=torch.float64, device="cpu"):
    """Random ragged batch: some joints unlabelled, some off-map, some people empty."""
    shape = (b, k, h, w) if d is None else (b, k, d, h, w)
    tags = torch.from_numpy(rng.normal(size=shape) * 1.5).to(dtype=dtype, device=device)
    kp = np.zeros((b, n, k, 3))
    kp[..., 0] = rng.uniform(-2, w + 1, size=(b, n, k))
    kp[..., 1] = rng.uniform(-2, h + 1, size=(b, n, k))
    kp[..., 2] = rng.choice([0.0, 1.0, 2.0], size=(b, n, k), p=[0.3, 0.35, 0.35])
    # some padding people and images with 0 / 1 person
    if n:
        kp[:, -1] = 0
    if b > 1:
        kp[1, 1:] = 0
    if b > 2:
        kp[2] = 0
    return tags, torch.from_numpy(kp).to(device=device, dtype=torch.float32)


@pytest.mark.parametrize(("push", "normalization"), MODES)
@pytest.mark.parametrize("d", [None, 1, 2, 4])
def test_matches_loop_reference_values_and_grads(rng, push, normalization, d):
    for _ in range(8):
        tags, kp = make_batch(rng, b=int(rng.integers(1, 5)), n=int(rng.integers(1, 7)), d=d)
        sigma = float(rng.uniform(0.3, 2.0))
        margin = float(rng.uniform(0.5, 3.0))
        rounding = str(rng.choice(["trunc", "floor", "round"]))
        opts = dict(
            push=push, sigma=sigma, margin=margin, normalization=normalization, rounding=rounding
        )
        assert_terms_and_grads_close(
            ae.grouping_loss, reference_terms, tags, kp, rng, rtol=1e-5, **opts
        )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(0, 3),
    n=st.integers(0, 5),
    k=st.integers(1, 4),
    d=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(MODES),
    use_mask=st.booleans(),
)
def test_matches_loop_reference_hypothesis(seed, b, n, k, d, mode, use_mask):
    rng = np.random.default_rng(seed)
    tags, kp = make_batch(rng, b=b, n=n, k=k, h=6, w=7, d=d)
    mask = torch.from_numpy((rng.random((b, 6, 7)) > 0.3).astype(np.float32)) if use_mask else None
    push, normalization = mode
    pull, push_v = ae.grouping_loss(
        tags, kp, mask, push=push, normalization=normalization, reduction="none"
    )
    rpull, rpush = reference_terms(tags, kp, mask, push=push, normalization=normalization)
    assert pull.shape == (b,)
    torch.testing.assert_close(pull, rpull, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(push_v, rpush, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("loss_type", ["exp", "max"])
def test_equals_higherhrnet_aeloss_on_packed_indices(rng, loss_type):
    """The default mode equals HigherHRNet's AELoss (D = 1), fed by the reference index format."""
    for _ in range(10):
        b, n, k, h, w = 3, 5, 6, 8, 8
        tags = torch.from_numpy(rng.normal(size=(b, k, h, w)))
        kp = np.zeros((b, n, k, 3))
        # some beyond the map, some less than a pixel left of or above it (int() -> pixel 0)
        kp[..., :2] = rng.uniform(-1.5, 10, size=(b, n, k, 2))
        kp[..., 2] = rng.random((b, n, k)) > 0.4
        ours = ae.grouping_loss(
            tags,
            torch.from_numpy(kp),
            push="exp" if loss_type == "exp" else "margin",
            reduction="none",
        )
        packed = ae.joint_indices(kp, (h, w), max_people=n)
        for i in range(b):
            push, pull = higherhrnet_single_tag_loss(tags[i].reshape(-1, 1), packed[i], loss_type)
            assert float(ours.pull[i]) == pytest.approx(float(pull), rel=1e-9, abs=1e-12)
            assert float(ours.push[i]) == pytest.approx(float(push), rel=1e-9, abs=1e-12)


def test_joints_less_than_a_pixel_outside_the_top_left_count_at_pixel_0():
    # HigherHRNet and mmpose index joints with int(x): x = -0.5 lands on column 0
    tags = torch.zeros(1, 1, 4, 4)
    tags[0, 0, 0, 0] = 3.0
    kp = torch.tensor([[[[-0.5, -0.25, 1.0]], [[2.0, 2.0, 1.0]]]])
    _, push = ae.grouping_loss(tags, kp)
    assert float(push) == pytest.approx(0.5 * np.exp(-9.0))  # two people, tags 3 and 0
    _, push_floor = ae.grouping_loss(tags, kp, rounding="floor")
    assert float(push_floor) == 0.0  # floor drops the first person: one person left
    far = torch.tensor([[[[-1.0, 0.5, 1.0]], [[2.0, 2.0, 1.0]]]])
    assert float(ae.grouping_loss(tags, far).push) == 0.0  # a whole pixel out: dropped


def test_flattened_tags_name_the_tags_and_the_layout():
    with pytest.raises(
        ValueError, match=r"tags of shape \(2, 34, 8, 8\) has 34 channels.*transpose"
    ):
        ae.grouping_loss(torch.zeros(2, 34, 8, 8), torch.zeros(2, 3, 17, 3))


def test_known_values_two_people():
    tags = torch.zeros(1, 2, 4, 4)
    tags[0, :, :, 2:] = 1.0
    tags[0, 1, 0, 1] = 0.5  # joint 1 of person 0 sits on a 0.5 tag
    kp = torch.tensor([[[[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]], [[3.0, 3.0, 1.0], [2.0, 2.0, 1.0]]]])
    pull, push = ae.grouping_loss(tags, kp)
    # person 0: tags (0, 0.5), mean 0.25, pull_0 = 0.0625; person 1: 0 -> pull = 0.03125
    assert float(pull) == pytest.approx(0.03125)
    # means 0.25 and 1: push = 0.5 * exp(-0.5625)
    assert float(push) == pytest.approx(0.5 * np.exp(-0.5625), rel=1e-6)
    paper_pull, paper_push = ae.grouping_loss(tags, kp, normalization="paper", sigma=1.0)
    assert float(paper_pull) == pytest.approx(0.125 / 2)  # sum over joints, mean over people
    assert float(paper_push) == pytest.approx((2 + 2 * np.exp(-0.5625 / 2)) / 4, rel=1e-6)
    _, margin_push = ae.grouping_loss(tags, kp, push="margin", margin=1.0)
    assert float(margin_push) == pytest.approx(0.5 * 0.25)


def test_gradcheck_float64(rng):
    for push, normalization in MODES:
        tags, kp = make_batch(rng, b=2, n=3, k=3, h=4, w=5, d=2)
        tags.requires_grad_(True)

        def f(t, kp=kp, push=push, normalization=normalization):
            out = ae.grouping_loss(t, kp, push=push, normalization=normalization, reduction="none")
            return out.pull, out.push

        assert torch.autograd.gradcheck(f, (tags,), fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_module_equals_function(rng, device):
    tags, kp = make_batch(rng, d=3, device=device)
    for push, normalization in MODES:
        for reduction in ["mean", "sum", "none"]:
            opts = dict(push=push, normalization=normalization, reduction=reduction, sigma=0.9)
            module = ae.AssociativeEmbeddingLoss(**opts)
            torch.testing.assert_close(module(tags, kp), ae.grouping_loss(tags, kp, **opts))
    assert "normalization='reference'" in repr(ae.AssociativeEmbeddingLoss())


def test_reductions(rng):
    tags, kp = make_batch(rng, b=4)
    none = ae.grouping_loss(tags, kp, reduction="none")
    mean = ae.grouping_loss(tags, kp, reduction="mean")
    total = ae.grouping_loss(tags, kp, reduction="sum")
    for i in range(2):
        torch.testing.assert_close(mean[i], none[i].mean())
        torch.testing.assert_close(total[i], none[i].sum())


def test_invariant_to_people_order_and_tag_offset(rng):
    tags, kp = make_batch(rng, b=2, n=6, d=2)
    base = ae.grouping_loss(tags, kp, reduction="none")
    perm = torch.from_numpy(rng.permutation(kp.shape[1]))
    shuffled = ae.grouping_loss(tags, kp[:, perm], reduction="none")
    shifted = ae.grouping_loss(tags + 3.25, kp, reduction="none")
    for other in (shuffled, shifted):
        torch.testing.assert_close(other.pull, base.pull)
        torch.testing.assert_close(other.push, base.push)


@pytest.mark.parametrize("d", [None, 3])
def test_zero_and_one_person_give_zero_push_and_finite_grads(d):
    shape = (3, 4, 5, 5) if d is None else (3, 4, d, 5, 5)
    tags = torch.zeros(shape, requires_grad=True)
    kp = torch.zeros(3, 2, 4, 3)
    kp[1, 0, :, :2] = 2.0
    kp[1, 0, :, 2] = 1.0  # image 1: one person; images 0, 2: nobody
    for push in ["exp", "margin"]:
        pull, push_v = ae.grouping_loss(tags, kp, push=push, reduction="none")
        assert pull.tolist() == [0.0, 0.0, 0.0]
        assert push_v.tolist() == [0.0, 0.0, 0.0]
        assert pull.requires_grad and push_v.requires_grad
        (pull.sum() + push_v.sum()).backward()
        # equal tags pull nothing and no pair pushes: the gradient is exactly zero
        assert torch.equal(tags.grad, torch.zeros_like(tags))
        tags.grad = None
    # paper normalisation keeps the diagonal term: one person -> exp(0) / 1 = 1
    _, paper_push = ae.grouping_loss(tags, kp, normalization="paper", reduction="none")
    assert paper_push.tolist() == [0.0, 1.0, 0.0]


def test_identical_mean_tags_margin_push_has_finite_grad():
    tags = torch.zeros(1, 2, 4, 4, requires_grad=True)  # all tags equal: ||delta|| = 0
    kp = torch.tensor([[[[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], [[3.0, 3.0, 1.0], [2.0, 2.0, 1.0]]]])
    _, push = ae.grouping_loss(tags, kp, push="margin")
    assert float(push) == pytest.approx(0.5)
    push.backward()
    assert torch.isfinite(tags.grad).all()


def test_empty_batch_and_no_people():
    tags = torch.zeros(0, 17, 8, 8, requires_grad=True)
    kp = torch.zeros(0, 5, 17, 3)
    pull, push = ae.grouping_loss(tags, kp)
    assert float(pull) == 0.0 and float(push) == 0.0
    (pull + push).backward()
    none = ae.grouping_loss(tags, kp, reduction="none")
    assert none.pull.shape == (0,)
    # N = 0 people slots
    tags = torch.randn(2, 17, 8, 8, requires_grad=True)
    pull, push = ae.grouping_loss(tags, torch.zeros(2, 0, 17, 3))
    assert float(pull) == 0.0 and float(push) == 0.0
    (pull + push).backward()
    assert tags.grad.abs().sum() == 0


def test_unlabelled_and_off_map_joints_do_not_count():
    tags = torch.arange(16.0).reshape(1, 1, 4, 4)
    kp = torch.tensor([[[[1.0, 1.0, 1.0]], [[9.0, 1.0, 1.0]], [[2.0, 2.0, 0.0]]]])  # (1, 3, 1, 3)
    kp_nan = kp.clone()
    kp_nan[0, 2, 0, :2] = float("nan")  # NaN coordinates are fine on unlabelled joints
    a = ae.grouping_loss(tags, kp, reduction="none")
    b = ae.grouping_loss(tags, kp[:, :1], reduction="none")
    c = ae.grouping_loss(tags, kp_nan, reduction="none")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_rounding_and_mask():
    tags = torch.zeros(1, 1, 3, 3)
    tags[0, 0, 1, 1] = 5.0
    tags[0, 0, 0, 0] = -5.0
    two = torch.tensor([[[[0.6, 0.6, 1.0]], [[2.0, 2.0, 1.0]]]])
    # round: person 0 reads (1, 1) = 5; floor: reads (0, 0) = -5; person 1 reads 0
    _, push_round = ae.grouping_loss(tags, two, rounding="round")
    _, push_floor = ae.grouping_loss(tags, two)  # default: trunc (= floor inside the map)
    assert float(push_round) == pytest.approx(0.5 * np.exp(-25.0))
    assert float(push_floor) == pytest.approx(0.5 * np.exp(-25.0))
    tags[0, 0, 0, 0] = -1.0
    _, push_floor = ae.grouping_loss(tags, two, rounding="floor")
    assert float(push_floor) == pytest.approx(0.5 * np.exp(-1.0))
    mask = torch.ones(1, 3, 3)
    mask[0, 2, 2] = 0  # person 1's only joint is ignored -> one person left
    _, push_masked = ae.grouping_loss(tags, two, mask)
    assert float(push_masked) == 0.0


def test_autocast_accumulates_in_float32(rng):
    tags, kp = make_batch(rng, dtype=torch.float32)
    ref = ae.grouping_loss(tags, kp)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = ae.grouping_loss(tags.to(torch.bfloat16), kp)
    assert half.pull.dtype == torch.float32 and half.push.dtype == torch.float32
    torch.testing.assert_close(half.pull, ref.pull, rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(half.push, ref.push, rtol=2e-2, atol=1e-3)
    f16 = ae.grouping_loss(tags.half(), kp)
    assert f16.pull.dtype == torch.float32


@pytest.mark.slow
def test_torch_compile_cpu(rng):
    tags, kp = make_batch(rng, b=2, n=3, k=4, dtype=torch.float32)
    module = ae.AssociativeEmbeddingLoss()
    compiled = torch.compile(module)
    t1 = tags.clone().requires_grad_(True)
    t2 = tags.clone().requires_grad_(True)
    eager = module(t1, kp)
    out = compiled(t2, kp)
    torch.testing.assert_close(out.pull, eager.pull)
    torch.testing.assert_close(out.push, eager.push)
    (out.pull + out.push).backward()
    (eager.pull + eager.push).backward()
    torch.testing.assert_close(t2.grad, t1.grad)


@pytest.mark.cuda
def test_cuda_matches_cpu(rng):
    tags, kp = make_batch(rng, d=2, dtype=torch.float32)
    cpu = ae.grouping_loss(tags, kp, reduction="none")
    gpu = ae.grouping_loss(tags.cuda(), kp, reduction="none")  # keypoints follow the tags
    torch.testing.assert_close(gpu.pull.cpu(), cpu.pull, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu.push.cpu(), cpu.push, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("tags", "kp", "kwargs", "exc", "match"),
    [
        (torch.zeros(2, 3, 4), torch.zeros(2, 1, 3, 3), {}, ValueError, r"tags must have shape"),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 5, 3),
            {},
            ValueError,
            r"keypoints must have shape \(B, N, K, 3\) = \(2, N, 3, 3\)",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(3, 1, 3, 3),
            {},
            ValueError,
            r"got shape \(3, 1, 3, 3\)",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3),
            {},
            ValueError,
            r"keypoints must have shape \(B, N, K, 3\)",
        ),
        (
            torch.zeros(2, 3, 4, 4, dtype=torch.int64),
            torch.zeros(2, 1, 3, 3),
            {},
            TypeError,
            r"tags must have a floating-point dtype, got torch.int64",
        ),
        (
            np.zeros((2, 3, 4, 4)),
            torch.zeros(2, 1, 3, 3),
            {},
            TypeError,
            r"tags must be a torch.Tensor, got ndarray",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3, 3),
            {"push": "max"},
            ValueError,
            r"push must be one of 'exp', 'margin', got 'max'",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3, 3),
            {"reduction": "avg"},
            ValueError,
            r"reduction must be one of",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3, 3),
            {"sigma": 0.0},
            ValueError,
            r"sigma must be > 0",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3, 3),
            {"normalization": "mmpose"},
            ValueError,
            r"normalization must be one of",
        ),
        (
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, 1, 3, 3),
            {"mask": torch.ones(2, 4, 5)},
            ValueError,
            r"mask must have shape \(B, H, W\) = \(2, 4, 4\)",
        ),
    ],
)
def test_errors(tags, kp, kwargs, exc, match):
    kwargs = dict(kwargs)
    mask = kwargs.pop("mask", None)
    with pytest.raises(exc, match=match):
        ae.grouping_loss(tags, kp, mask, **kwargs)


def test_errors_on_non_finite_inputs():
    tags = torch.zeros(1, 2, 4, 4)
    kp = torch.ones(1, 1, 2, 3)
    bad = kp.clone()
    bad[0, 0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="keypoints contains NaN"):
        ae.grouping_loss(tags, bad)
    bad_tags = tags.clone()
    bad_tags[0, 1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="tags contains NaN or infinite values at 1 labelled"):
        ae.grouping_loss(bad_tags, kp)
    # NaN away from labelled joints is not read and not reported
    far = tags.clone()
    far[0, 0, 3, 3] = float("nan")
    assert float(ae.grouping_loss(far, kp).pull) == 0.0


def test_module_validates_at_construction():
    with pytest.raises(ValueError, match="push must be one of"):
        ae.AssociativeEmbeddingLoss(push="hinge")
    with pytest.raises(ValueError, match="margin must be > 0"):
        ae.AssociativeEmbeddingLoss(margin=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ae.HeatmapLoss(reduction="batchmean")


# --------------------------------------------------------------------------- heatmap loss


def test_heatmap_loss_matches_loop(rng):
    b, k, h, w = 3, 4, 5, 6
    pred = torch.from_numpy(rng.normal(size=(b, k, h, w)))
    target = torch.from_numpy(rng.random((b, k, h, w)))
    for mask in [
        None,
        torch.from_numpy(rng.random((b, h, w)) > 0.5).double(),
        torch.from_numpy(rng.random((b, k, h, w)) > 0.5).double(),
    ]:
        expected = []
        for i in range(b):
            total = 0.0
            for j in range(k):
                for y in range(h):
                    for x in range(w):
                        m = (
                            1.0
                            if mask is None
                            else float(mask[i, y, x] if mask.dim() == 3 else mask[i, j, y, x])
                        )
                        total += m * float(pred[i, j, y, x] - target[i, j, y, x]) ** 2
            expected.append(total / (k * h * w))
        got = ae.heatmap_loss(pred, target, mask, reduction="none")
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
        assert float(ae.HeatmapLoss()(pred, target, mask)) == pytest.approx(np.mean(expected))
        assert float(ae.HeatmapLoss(reduction="sum")(pred, target, mask)) == pytest.approx(
            np.sum(expected)
        )


def test_heatmap_loss_gradcheck_and_errors(rng):
    pred = torch.from_numpy(rng.normal(size=(2, 2, 3, 3))).requires_grad_(True)
    target = torch.from_numpy(rng.random((2, 2, 3, 3)))
    assert torch.autograd.gradcheck(lambda p: ae.heatmap_loss(p, target, reduction="none"), (pred,))
    with pytest.raises(ValueError, match=r"targets must have the shape of heatmaps"):
        ae.heatmap_loss(pred, target[:, :1])
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3, 3\)"):
        ae.heatmap_loss(pred, target, torch.ones(2, 4, 3))
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(B, K, H, W\)"):
        ae.heatmap_loss(pred[0], target[0])
    with pytest.raises(TypeError, match="mask must have a floating-point dtype"):
        ae.heatmap_loss(pred, target, torch.ones(2, 3, 3, dtype=torch.bool))
    bad = target.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="targets contains NaN"):
        ae.heatmap_loss(pred, bad)
    half = ae.heatmap_loss(pred.detach().to(torch.bfloat16), target.to(torch.bfloat16))
    assert half.dtype == torch.float32
