from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import associative_embedding as ae
from associative_embedding.instance_loss import _pixel_selection
from tests.conftest import DEVICES, assert_terms_and_grads_close


def loop_terms(tags, labels, *, push="exp", sigma=2**-0.5, margin=1.0, delta_v=0.0):
    """Per-image (pull, push), float64, by plain loops over images, instances and pixels."""
    b, d, h, w = tags.shape
    pulls, pushes = [], []
    for i in range(b):
        members = {}
        for y in range(h):
            for x in range(w):
                lab = int(labels[i, y, x])
                if lab > 0:
                    members.setdefault(lab, []).append(tags[i, :, y, x].double())
        zero = tags.sum().double() * 0
        means = []
        pull = zero
        for lab in sorted(members):
            rows = members[lab]
            mean = sum(rows) / len(rows)
            means.append(mean)
            total = zero
            for r in rows:
                dist = torch.sqrt(((r - mean) ** 2).sum() + 1e-300)
                if delta_v > 0:
                    total = total + torch.clamp(dist - delta_v, min=0.0) ** 2
                else:
                    total = total + ((r - mean) ** 2).sum()
            pull = pull + total / (len(rows) * d)
        n = len(means)
        pulls.append(pull / n if n else zero)
        if n < 2:
            pushes.append(zero)
            continue
        total = zero
        for a in range(n):
            for c in range(n):
                if a == c:
                    continue
                diff = means[a] - means[c]
                if push == "exp":
                    total = total + math.e ** (-(diff**2).sum() / (2 * sigma**2))
                else:
                    total = total + torch.clamp(margin - torch.sqrt((diff**2).sum()), min=0.0)
        pushes.append(0.5 * total / (n * (n - 1)))
    return torch.stack(pulls), torch.stack(pushes)


def make_batch(rng, b=3, d=2, h=7, w=9, n=4, dtype=torch.float64, device="cpu"):
    """Random tags and labels with background, ignore and sparse ids; image 1 is empty."""
    tags = torch.from_numpy(rng.normal(size=(b, d, h, w)) * 1.5).to(dtype=dtype, device=device)
    ids = rng.choice([0, -1, *rng.choice(np.arange(1, 50), size=n, replace=False)], size=(b, h, w))
    if b > 1:
        ids[1] = rng.choice([0, -3], size=(h, w))
    return tags, torch.from_numpy(ids).to(device)


@pytest.mark.parametrize("push", ["exp", "margin"])
@pytest.mark.parametrize("delta_v", [0.0, 0.4])
@pytest.mark.parametrize("d", [1, 3])
def test_matches_loop_values_and_grads(rng, push, delta_v, d):
    for _ in range(5):
        tags, labels = make_batch(rng, b=int(rng.integers(1, 4)), d=d, n=int(rng.integers(1, 6)))
        opts = dict(
            push=push,
            sigma=float(rng.uniform(0.3, 2.0)),
            margin=float(rng.uniform(0.5, 4.0)),
            delta_v=delta_v,
        )
        assert_terms_and_grads_close(
            ae.instance_grouping_loss, loop_terms, tags, labels, rng, rtol=1e-6, **opts
        )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reductions(rng, reduction):
    tags, labels = make_batch(rng, b=4)
    pull_n, push_n = ae.instance_grouping_loss(tags, labels, reduction="none")
    pull, push = ae.instance_grouping_loss(tags, labels, reduction=reduction)
    fold = torch.mean if reduction == "mean" else torch.sum
    torch.testing.assert_close(pull, fold(pull_n))
    torch.testing.assert_close(push, fold(push_n))


def test_module_matches_function(rng):
    tags, labels = make_batch(rng)
    opts = dict(push="margin", margin=2.0, delta_v=0.2, reduction="sum")
    criterion = ae.InstanceGroupingLoss(**opts)
    assert "delta_v=0.2" in repr(criterion)
    torch.testing.assert_close(
        tuple(criterion(tags, labels)), tuple(ae.instance_grouping_loss(tags, labels, **opts))
    )


@pytest.mark.parametrize("offset", [1, 10**12])  # dense id table / sorted sparse ids
def test_permuting_label_ids_changes_nothing(rng, offset):
    tags, labels = make_batch(rng, n=5)
    perm = torch.from_numpy(rng.permutation(200) + offset)
    relabelled = torch.where(labels > 0, perm[labels.clamp(min=0)], labels)
    a = ae.instance_grouping_loss(tags, labels, reduction="none")
    b = ae.instance_grouping_loss(tags, relabelled, reduction="none")
    torch.testing.assert_close(tuple(a), tuple(b))


def test_translation_of_all_tags_changes_nothing(rng):
    tags, labels = make_batch(rng)
    shift = torch.from_numpy(rng.normal(size=(1, tags.shape[1], 1, 1)))
    a = ae.instance_grouping_loss(tags, labels, reduction="none")
    b = ae.instance_grouping_loss(tags + shift, labels, reduction="none")
    torch.testing.assert_close(tuple(a), tuple(b))


def test_empty_images_and_empty_batch():
    tags = torch.randn(2, 3, 5, 5, requires_grad=True)
    labels = torch.zeros(2, 5, 5, dtype=torch.long)
    labels[1] = -1
    pull, push = ae.instance_grouping_loss(tags, labels)
    assert float(pull) == 0.0
    assert float(push) == 0.0
    (pull + push).backward()
    assert torch.equal(tags.grad, torch.zeros_like(tags))
    pull, push = ae.instance_grouping_loss(torch.zeros(0, 2, 4, 4), torch.zeros(0, 4, 4).long())
    assert float(pull) == 0.0
    assert float(push) == 0.0
    assert ae.instance_grouping_loss(torch.zeros(0, 2, 4, 4), torch.zeros(0, 4, 4).long(),
                                     reduction="none").pull.shape == (0,)  # fmt: skip


def test_one_instance_pushes_nothing(rng):
    tags = torch.from_numpy(rng.normal(size=(1, 2, 4, 4)))
    labels = torch.zeros(1, 4, 4, dtype=torch.int32)
    labels[0, 1:3, 1:3] = 7
    pull, push = ae.instance_grouping_loss(tags, labels)
    rows = tags[0, :, 1:3, 1:3].reshape(2, -1)
    expect = ((rows - rows.mean(1, keepdim=True)) ** 2).sum(0).mean() / 2
    torch.testing.assert_close(pull, expect)
    assert float(push) == 0.0


def test_ignored_pixels_do_not_count(rng):
    tags, labels = make_batch(rng, b=1)
    poisoned = tags.clone()
    poisoned[:, :, labels[0] <= 0] = float("nan")  # NaN in background and ignore regions
    a = ae.instance_grouping_loss(tags, labels)
    b = ae.instance_grouping_loss(poisoned, labels)
    torch.testing.assert_close(tuple(a), tuple(b))


def test_nan_at_labelled_pixel_is_reported():
    tags = torch.zeros(1, 1, 3, 3)
    labels = torch.ones(1, 3, 3, dtype=torch.long)
    tags[0, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite values at 1 labelled pixel"):
        ae.instance_grouping_loss(tags, labels)


def test_identical_means_margin_gradient_is_finite():
    tags = torch.ones(1, 2, 2, 2, requires_grad=True)
    labels = torch.tensor([[[1, 1], [2, 2]]])
    pull, push = ae.instance_grouping_loss(tags, labels, push="margin", delta_v=0.5)
    (pull + push).backward()
    assert float(push) == 0.5
    assert torch.isfinite(tags.grad).all()


def test_sampling_keeps_at_most_max_pixels_per_instance(rng):
    tags, labels = make_batch(rng, b=2, h=12, w=12, n=3)
    img, pos, seg, _, n_seg = _pixel_selection(labels, 5, torch.Generator().manual_seed(0))
    pix = img * 144 + pos
    counts = torch.bincount(seg, minlength=n_seg)
    _, _, full_seg, _, _ = _pixel_selection(labels, None, None)
    assert torch.equal(counts, torch.bincount(full_seg, minlength=n_seg).clamp(max=5))
    assert torch.all(labels.reshape(-1)[pix] > 0)
    # the loss with sampling is the loss on the drawn pixels alone (others ignored)
    kept = torch.full_like(labels, -1).reshape(-1)
    kept[pix] = labels.reshape(-1)[pix]
    got = ae.instance_grouping_loss(
        tags, labels, max_pixels=5, generator=torch.Generator().manual_seed(0), reduction="none"
    )
    torch.testing.assert_close(tuple(got), loop_terms(tags, kept.reshape(labels.shape)))
    # a cap above every instance's area is no sampling at all
    big = ae.instance_grouping_loss(tags, labels, max_pixels=10_000)
    torch.testing.assert_close(tuple(big), tuple(ae.instance_grouping_loss(tags, labels)))


def test_sampling_draws_every_pixel_eventually():
    labels = torch.ones(1, 4, 4, dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    seen = torch.zeros(16, dtype=torch.long)
    for _ in range(40):
        _, pos, _, _, _ = _pixel_selection(labels, 3, g)
        seen[pos] += 1
    assert bool((seen > 0).all())


def test_float32_accumulation_under_autocast(rng):
    tags, labels = make_batch(rng, dtype=torch.float32)
    ref = ae.instance_grouping_loss(tags, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = ae.instance_grouping_loss(tags.bfloat16(), labels)
    assert half.pull.dtype == torch.float32
    torch.testing.assert_close(tuple(half), tuple(ref), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_devices(rng, device):
    tags, labels = make_batch(rng, dtype=torch.float32)
    got = ae.instance_grouping_loss(tags.to(device), labels.to(device), max_pixels=4,
                                    generator=torch.Generator(device).manual_seed(0))  # fmt: skip
    assert got.pull.device.type == device


@pytest.mark.parametrize(
    ("tags", "labels", "opts", "error", "match"),
    [
        (np.zeros((1, 1, 2, 2)), torch.zeros(1, 2, 2).long(), {}, TypeError, "tags must be"),
        (torch.zeros(1, 1, 2, 2).long(), torch.zeros(1, 2, 2).long(), {}, TypeError, "tags must"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2), {}, TypeError, "labels must have an int"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).bool(), {}, TypeError, "labels must have"),
        (torch.zeros(1, 1, 2, 2), np.zeros((1, 2, 2), int), {}, TypeError, "labels must be a"),
        (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2).long(), {}, ValueError, r"\(B, D, H, W\)"),
        (torch.zeros(1, 0, 2, 2), torch.zeros(1, 2, 2).long(), {}, ValueError, "D >= 1"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 3).long(), {}, ValueError, r"labels must .*"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(2, 2).long(), {}, ValueError, r"\(1, 2, 2\)"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"push": "max"}, ValueError,
         "push must be one of"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"sigma": 0.0}, ValueError,
         "sigma must be > 0"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"margin": -1.0}, ValueError,
         "margin must be > 0"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"delta_v": -0.1}, ValueError,
         "delta_v must be >= 0"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"max_pixels": 0}, ValueError,
         "max_pixels must be >= 1"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"max_pixels": 2.5}, TypeError,
         "max_pixels must be an integer"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"reduction": "avg"}, ValueError,
         "reduction must be one of"),
        (torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2).long(), {"generator": 3}, TypeError,
         "generator must be a torch.Generator"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_named_errors(tags, labels, opts, error, match):
    with pytest.raises(error, match=match):
        ae.instance_grouping_loss(tags, labels, **opts)


def test_module_validates_at_construction():
    with pytest.raises(ValueError, match="push must be one of"):
        ae.InstanceGroupingLoss(push="hinge")
    with pytest.raises(ValueError, match="delta_v must be >= 0"):
        ae.InstanceGroupingLoss(delta_v=-1)


@pytest.mark.parametrize(("push", "delta_v"), [("exp", 0.0), ("margin", 0.3)])
def test_gradcheck(rng, push, delta_v):
    tags, labels = make_batch(rng, b=2, d=2, h=4, w=5, n=3)
    tags.requires_grad_(True)

    def fn(t):
        return tuple(ae.instance_grouping_loss(t, labels, push=push, margin=3.0, delta_v=delta_v,
                                               reduction="none"))  # fmt: skip

    assert torch.autograd.gradcheck(fn, (tags,), fast_mode=True)


def test_float32_matches_float64(rng):
    tags, labels = make_batch(rng, n=5)
    a = ae.instance_grouping_loss(tags.float(), labels, reduction="none")
    b = ae.instance_grouping_loss(tags, labels, reduction="none")
    assert a.pull.dtype == torch.float32
    torch.testing.assert_close(tuple(a), tuple(t.float() for t in b), rtol=1e-5, atol=1e-6)
