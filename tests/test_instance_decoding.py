from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import associative_embedding as ae
from tests.conftest import DEVICES


def slow_decode(fg, tags, threshold=0.5, tag_threshold=1.0, min_size=8, max_instances=100,
                max_seeds=1000, iterations=1):  # fmt: skip
    """The documented rules, one image, plain Python: returns (labels, scores, classes, areas)."""
    if fg.ndim == 2:
        fg = fg[None]
    _, h, w = fg.shape
    d = tags.shape[0]
    score = [float(fg[:, i // w, i % w].max()) for i in range(h * w)]
    cls = [int(np.argmax(fg[:, i // w, i % w])) for i in range(h * w)]
    tag = [[float(tags[k, i // w, i % w]) for k in range(d)] for i in range(h * w)]
    unassigned = [i for i in range(h * w) if score[i] > threshold]  # raster order
    labels = [0] * (h * w)
    scores, classes, areas = [], [], []

    def near(i, centre, seed):
        dist = 0.0
        for k in range(d):
            t = tag[i][k] - centre[k]
            dist += t * t
        return dist < tag_threshold * tag_threshold or i == seed

    seeds = 0
    while unassigned and len(scores) < max_instances and seeds < max_seeds:
        seeds += 1
        seed = unassigned[0]
        for i in unassigned:
            if score[i] > score[seed]:
                seed = i
        centre = list(tag[seed])
        for _ in range(iterations):
            group = [i for i in unassigned if cls[i] == cls[seed] and near(i, centre, seed)]
            sums = [0.0] * d
            for i in group:
                for k in range(d):
                    sums[k] += tag[i][k]
            centre = [s / len(group) for s in sums]
        group = [i for i in unassigned if cls[i] == cls[seed] and near(i, centre, seed)]
        unassigned = [i for i in unassigned if i not in set(group)]
        if len(group) < min_size:
            continue
        for i in group:
            labels[i] = len(scores) + 1
        total = 0.0
        for i in group:
            total += score[i]
        scores.append(total / len(group))
        classes.append(cls[seed])
        areas.append(len(group))
    return np.array(labels).reshape(h, w), np.array(scores), np.array(classes), np.array(areas)


def blobs(rng, b=2, c=1, d=2, h=12, w=14, n=4, noise=0.3, dtype=np.float32):
    """Random foreground with n rectangles per image, each with its own tag plus noise."""
    fg = rng.uniform(0, 0.6, size=(b, c, h, w))
    tags = rng.normal(size=(b, d, h, w)) * noise
    for i in range(b):
        for _ in range(n):
            y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
            hh, ww = rng.integers(2, 7), rng.integers(2, 7)
            fg[i, rng.integers(0, c), y : y + hh, x : x + ww] = rng.uniform(0.55, 1.0)
            tags[i, :, y : y + hh, x : x + ww] += rng.normal(size=(d, 1, 1)) * 2
    return fg.astype(dtype), tags.astype(dtype)


def assert_same(got, fg, tags, **opts):
    for i, inst in enumerate(got):
        labels, scores, classes, areas = slow_decode(fg[i], tags[i], **opts)
        np.testing.assert_array_equal(inst.labels, labels)
        np.testing.assert_allclose(inst.scores, scores, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(inst.classes, classes)
        np.testing.assert_array_equal(inst.areas, areas)
        np.testing.assert_array_equal(inst.areas, np.bincount(inst.labels.ravel(),
                                                              minlength=len(inst) + 1)[1:])  # fmt: skip


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_slow_rules_on_random_maps(rng, c, d, dtype):
    for _ in range(4):
        fg, tags = blobs(rng, c=c, d=d, n=int(rng.integers(0, 6)), dtype=dtype)
        opts = dict(
            threshold=float(rng.uniform(0.3, 0.6)),
            tag_threshold=float(rng.uniform(0.3, 1.5)),
            min_size=int(rng.integers(1, 6)),
            iterations=int(rng.integers(0, 3)),
        )
        got = ae.decode_instances(fg if c > 1 else fg[:, 0], tags, **opts)
        assert_same(got, fg, tags, **opts)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    max_instances=st.integers(1, 4),
    max_seeds=st.integers(1, 6),
)
def test_limits_match_slow_rules(seed, max_instances, max_seeds):
    rng = np.random.default_rng(seed)
    fg, tags = blobs(rng, b=1, noise=1.0, n=5)
    opts = dict(min_size=2, max_instances=max_instances, max_seeds=max_seeds)
    (inst,) = ae.decode_instances(fg[:, 0], tags, **opts)
    assert_same([inst], fg, tags, **opts)
    assert len(inst) <= max_instances
    left = int((fg[0, 0] > 0.5).sum()) - int(inst.areas.sum())
    assert inst.unassigned <= left


def test_torch_inputs_and_numpy_agree(rng):
    fg, tags = blobs(rng)
    a = ae.decode_instances(fg[:, 0], tags)
    b = ae.decode_instances(torch.from_numpy(fg[:, 0]).requires_grad_(True), torch.from_numpy(tags))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.labels, y.labels)
        np.testing.assert_array_equal(x.tags, y.tags)


def test_float64_tensors_are_decoded_in_float64_as_arrays_are(rng):
    fg, tags = blobs(rng, dtype=np.float64)
    a = ae.decode_instances(fg[:, 0], tags)
    b = ae.decode_instances(torch.from_numpy(fg[:, 0]), torch.from_numpy(tags))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.labels, y.labels)
        np.testing.assert_array_equal(x.tags, y.tags)  # not rounded through float32


@pytest.mark.parametrize("device", DEVICES)
def test_devices(rng, device):
    fg, tags = blobs(rng)
    (inst, _) = ae.decode_instances(
        torch.from_numpy(fg).to(device), torch.from_numpy(tags).to(device)
    )
    assert inst.labels.shape == (12, 14)


def test_non_contiguous_read_only_and_threads(rng):
    fg, tags = blobs(rng, b=5)
    ref = ae.decode_instances(fg, tags, num_threads=1)
    fg_t = np.asfortranarray(fg)
    fg_t.setflags(write=False)
    tags_nc = np.ascontiguousarray(tags.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    got = ae.decode_instances(fg_t, tags_nc, num_threads=2)
    for x, y in zip(ref, got, strict=True):
        np.testing.assert_array_equal(x.labels, y.labels)


def test_empty_inputs():
    assert ae.decode_instances(np.zeros((0, 4, 4)), np.zeros((0, 2, 4, 4))) == []
    (inst,) = ae.decode_instances(np.zeros((1, 4, 4)), np.zeros((1, 2, 4, 4)))
    assert len(inst) == 0
    assert inst.unassigned == 0
    assert inst.tags.shape == (0, 2)
    assert not inst.labels.any()
    assert inst.masks().shape == (0, 4, 4)


def test_constant_tags_give_one_instance_per_class():
    fg = np.zeros((1, 2, 5, 5), np.float32)
    fg[0, 0, :, :2] = 0.9
    fg[0, 1, :, 3:] = 0.8
    (inst,) = ae.decode_instances(fg, np.zeros((1, 1, 5, 5), np.float32), min_size=1)
    assert inst.classes.tolist() == [0, 1]
    assert inst.areas.tolist() == [10, 10]
    assert inst.scores.round(6).tolist() == [0.9, 0.8]
    masks = inst.masks()
    assert masks[0, :, :2].all()
    assert masks[1, :, 3:].all()


def test_fragments_are_dropped():
    fg = np.full((1, 3, 3), 0.9, np.float32)
    tags = np.zeros((1, 1, 3, 3), np.float32)
    tags[0, 0, 1, 1] = 5.0  # one pixel with its own tag
    (inst,) = ae.decode_instances(fg, tags, min_size=2)
    assert inst.areas.tolist() == [8]
    assert inst.labels[1, 1] == 0
    assert inst.unassigned == 0


@pytest.mark.parametrize(
    ("fg", "tags", "opts", "error", "match"),
    [
        ([[[0.0]]], np.zeros((1, 1, 1, 1)), {}, TypeError, "foreground must be"),
        (np.zeros((1, 2, 2), int), np.zeros((1, 1, 2, 2)), {}, TypeError, "foreground must have"),
        (np.zeros((1, 2, 2)), torch.zeros(1, 1, 2, 2), {}, TypeError, "must both be numpy arrays"),
        (np.zeros((2, 2)), np.zeros((1, 1, 2, 2)), {}, ValueError, r"foreground must have shape"),
        (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), {}, ValueError, r"tags must have shape"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 3)), {}, ValueError, r"\(1, D, 2, 2\)"),
        (np.zeros((1, 2, 2)), np.zeros((1, 0, 2, 2)), {}, ValueError, "D >= 1"),
        (np.full((1, 2, 2), np.nan), np.zeros((1, 1, 2, 2)), {}, ValueError, "foreground contains"),
        (np.zeros((1, 2, 2)), np.full((1, 1, 2, 2), np.inf), {}, ValueError, "tags contains"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"tag_threshold": 0}, ValueError,
         "tag_threshold must be > 0"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"threshold": np.nan}, ValueError,
         "threshold must be finite"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"min_size": 0}, ValueError,
         "min_size must be >= 1"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"max_instances": 1.0}, TypeError,
         "max_instances must be an integer"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"max_seeds": 0}, ValueError,
         "max_seeds must be >= 1"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"iterations": -1}, ValueError,
         "iterations must be >= 0"),
        (np.zeros((1, 2, 2)), np.zeros((1, 1, 2, 2)), {"num_threads": 0}, ValueError,
         "num_threads must be >= 1"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_named_errors(fg, tags, opts, error, match):
    with pytest.raises(error, match=match):
        ae.decode_instances(fg, tags, **opts)


def test_instances_checks_shapes():
    with pytest.raises(ValueError, match="must agree"):
        ae.Instances(np.zeros((2, 2), np.int32), np.zeros(2), np.zeros(1, np.int64),
                     np.zeros((2, 1)), np.zeros(2, np.int64))  # fmt: skip
    with pytest.raises(TypeError, match=r"labels must be a numpy\.ndarray"):
        ae.Instances([[0]], np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.zeros(0))


def test_equal_scores_seed_at_the_lowest_raster_index():
    fg = np.full((1, 1, 3), 0.9, np.float32)
    tags = np.array([[[[0.0, 0.6, 1.2]]]], np.float32)
    (inst,) = ae.decode_instances(fg, tags, min_size=1, iterations=0)
    assert inst.labels.tolist() == [[1, 1, 2]]  # seed pixel 0: {0, 0.6}; then pixel 2
    labels, *_ = slow_decode(fg[0], tags[0], min_size=1, iterations=0)
    assert labels.tolist() == [[1, 1, 2]]
    (inst,) = ae.decode_instances(np.array([[[0.9, 0.9, 0.95]]], np.float32), tags, min_size=1,
                                  iterations=0)  # fmt: skip
    assert inst.labels.tolist() == [[2, 1, 1]]  # the strongest pixel seeds first


def test_read_only_contiguous_inputs(rng):
    fg, tags = blobs(rng, b=2)
    ref = ae.decode_instances(fg, tags)
    fg.setflags(write=False)
    tags.setflags(write=False)
    for x, y in zip(ref, ae.decode_instances(fg, tags), strict=True):
        np.testing.assert_array_equal(x.labels, y.labels)
