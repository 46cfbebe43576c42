"""Multi-scale and flip aggregation: flip_maps and aggregate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from associative_embedding import COCO_KEYPOINTS
from associative_embedding.aggregation import aggregate, flip_maps
from tests.conftest import DEVICES

FLIP = list(COCO_KEYPOINTS.flip_index)
K = len(FLIP)


# ---------------------------------------------------------------- references (slow loops)


def flip_maps_loop(maps: np.ndarray, flip_index, shift=False) -> np.ndarray:
    out = np.empty_like(maps)
    w = maps.shape[-1]
    for k in range(maps.shape[1]):
        for x in range(w):
            out[:, k, ..., x] = maps[:, flip_index[k], ..., w - 1 - x]
    if shift:
        for x in range(w - 1, 0, -1):
            out[..., x] = out[..., x - 1]
    return out


def higherhrnet_aggregate(outputs, outputs_flip, flip_index, size, scale1_index):
    """HigherHRNet valid.py + inference.py with PROJECT2IMAGE, FLIP_TEST, one output stage.

    Written from HigherHRNet ``lib/core/inference.py`` and ``tools/valid.py``: per scale the flipped output is flipped back and
    permuted at the network resolution; each heatmap and tag map is resized to
    base_size; heatmaps are (orig + flip) / 2, summed over scales and divided by the
    number of scales; tags of scale 1 get a trailing axis and are concatenated.
    """
    final = None
    tags_list = []
    for s, ((hm, tag), (hm_f, tag_f)) in enumerate(zip(outputs, outputs_flip, strict=True)):
        hm_f = torch.flip(hm_f, [3])[:, flip_index, :, :]
        tag_f = torch.flip(tag_f, [3])[:, flip_index, :, :]

        def up(t):
            return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

        heatmaps = [up(hm), up(hm_f)]
        tags = [up(tag), up(tag_f)]
        if s == scale1_index:
            tags_list.extend(torch.unsqueeze(t, dim=4) for t in tags)
        avg = (heatmaps[0] + heatmaps[1]) / 2.0
        final = avg if final is None else final + avg
    final = final / float(len(outputs))
    tags = torch.cat(tags_list, dim=4)  # (B, K, H, W, D)
    return final, tags.permute(0, 1, 4, 2, 3)


def make_maps(rng, shape, dtype=np.float32):
    return rng.random(shape).astype(dtype)


# ---------------------------------------------------------------- flip_maps


@pytest.mark.parametrize("shape", [(2, K, 5, 7), (1, K, 3, 4, 6), (0, K, 2, 2)])
@pytest.mark.parametrize("shift", [False, True])
def test_flip_maps_matches_loop(shape, shift):
    rng = np.random.default_rng(0)
    maps = make_maps(rng, shape)
    expected = flip_maps_loop(maps, FLIP, shift)
    got = flip_maps(maps, FLIP, shift=shift)
    assert isinstance(got, np.ndarray)
    assert got.dtype == maps.dtype
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    got_t = flip_maps(torch.from_numpy(maps), FLIP, shift=shift)
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_array_equal(got_t.numpy(), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, K, 5, 7), (1, K, 2, 4, 6)])
def test_flip_maps_twice_is_identity(device, shape):
    gen = torch.Generator().manual_seed(1)
    maps = torch.rand(shape, generator=gen, dtype=torch.float64).to(device)
    once = flip_maps(maps, FLIP)
    assert once.device == maps.device
    assert not torch.equal(once, maps)
    assert torch.equal(flip_maps(once, FLIP), maps)
    arr = maps.cpu().numpy()
    np.testing.assert_array_equal(flip_maps(flip_maps(arr, FLIP), FLIP), arr)


def test_flip_maps_returns_new_array():
    maps = np.zeros((1, 2, 2, 2), dtype=np.float32)
    out = flip_maps(maps, [1, 0])
    out[...] = 1
    assert maps.sum() == 0
    t = torch.zeros(1, 2, 2, 2)
    flip_maps(t, [1, 0]).add_(1)
    assert t.sum() == 0


def test_flip_maps_accepts_array_index_and_gradients():
    maps = torch.rand(1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    out = flip_maps(maps, np.array([0, 2, 1]))
    out.sum().backward()
    assert torch.equal(maps.grad, torch.ones_like(maps))


@pytest.mark.parametrize(
    ("maps", "flip_index", "exc", "match"),
    [
        (np.zeros((1, 2, 3)), [1, 0], ValueError, r"maps must have shape"),
        (np.zeros((1, 2, 3, 3), dtype=np.int64), [1, 0], TypeError, "floating-point"),
        ([[1.0]], [0], TypeError, "maps must be"),
        (np.full((1, 2, 3, 3), np.nan), [1, 0], ValueError, "NaN"),
        (np.zeros((1, 0, 3, 3)), [], ValueError, "K >= 1"),
        (np.zeros((1, 2, 3, 3)), [1, 0, 2], ValueError, "length K=2"),
        (np.zeros((1, 2, 3, 3)), [1, 1], ValueError, "permutation"),
        (np.zeros((1, 2, 3, 3)), [1.0, 0.0], TypeError, r"flip_index\[0\]"),
        (np.zeros((1, 2, 3, 3)), "10", TypeError, "flip_index must be a sequence"),
        (np.zeros((1, 2, 3, 3)), np.array([1.0, 0.0]), TypeError, "integers"),
        (np.zeros((1, 2, 3, 3)), np.array([[1, 0]]), ValueError, "one-dimensional"),
    ],
)
def test_flip_maps_errors(maps, flip_index, exc, match):
    with pytest.raises(exc, match=match):
        flip_maps(maps, flip_index)


def test_flip_maps_shift_must_be_bool():
    with pytest.raises(TypeError, match="shift must be a bool"):
        flip_maps(np.zeros((1, 2, 3, 3)), [1, 0], shift=1)


# ---------------------------------------------------------------- aggregate


def test_single_scale_no_flip_is_resize():
    rng = np.random.default_rng(2)
    hm = make_maps(rng, (2, K, 8, 10))
    tag = make_maps(rng, (2, K, 8, 10))
    for align in (False, True):
        heat, tags = aggregate([(hm, tag)], size=(16, 20), align_corners=align)

        def up(a, align=align):
            return F.interpolate(
                torch.from_numpy(a), size=(16, 20), mode="bilinear", align_corners=align
            ).numpy()

        assert heat.shape == (2, K, 16, 20)
        assert tags.shape == (2, K, 1, 16, 20)
        np.testing.assert_array_equal(heat, up(hm))
        np.testing.assert_array_equal(tags[:, :, 0], up(tag))


def test_same_size_returns_copies():
    rng = np.random.default_rng(3)
    hm = make_maps(rng, (1, K, 6, 6))
    tag = make_maps(rng, (1, K, 6, 6))
    heat, tags = aggregate([(hm, tag)])  # size=None: the first scale's size
    np.testing.assert_array_equal(heat, hm)
    np.testing.assert_array_equal(tags[:, :, 0], tag)
    heat[...] = -1
    tags[...] = -1
    assert hm.min() >= 0
    assert tag.min() >= 0


def test_two_identical_scales_equal_one_scale_with_repeated_tags():
    rng = np.random.default_rng(4)
    hm = make_maps(rng, (2, K, 8, 8))
    tag = make_maps(rng, (2, K, 3, 8, 8))
    hm_f = make_maps(rng, (2, K, 8, 8))
    tag_f = make_maps(rng, (2, K, 3, 8, 8))
    kwargs = {"size": (12, 12), "flip_index": FLIP}
    heat1, tags1 = aggregate([(hm, tag)], flipped=[(hm_f, tag_f)], **kwargs)
    heat2, tags2 = aggregate(
        [(hm, tag), (hm, tag)], flipped=[(hm_f, tag_f)] * 2, tag_scales="all", **kwargs
    )
    np.testing.assert_array_equal(heat2, heat1)  # (a + a) / 2 == a exactly
    assert tags1.shape == (2, K, 6, 12, 12)
    assert tags2.shape == (2, K, 12, 12, 12)
    np.testing.assert_array_equal(tags2, np.concatenate([tags1, tags1], axis=2))
    # the default keeps the first scale's tags only
    _, tags_default = aggregate([(hm, tag), (hm, tag)], flipped=[(hm_f, tag_f)] * 2, **kwargs)
    np.testing.assert_array_equal(tags_default, tags1)


def test_truly_mirrored_pair_reproduces_original():
    # an equivariant network's output on the mirrored image is flip_maps of its output
    rng = np.random.default_rng(5)
    hm = make_maps(rng, (1, K, 9, 7), np.float64)
    tag = make_maps(rng, (1, K, 9, 7), np.float64)
    mirrored = (flip_maps(hm, FLIP), flip_maps(tag, FLIP))
    heat, tags = aggregate([(hm, tag)], flipped=[mirrored], flip_index=FLIP)
    np.testing.assert_array_equal(heat, hm)
    np.testing.assert_array_equal(tags[:, :, 0], tag)
    np.testing.assert_array_equal(tags[:, :, 1], tag)
    # and with a resize
    heat, tags = aggregate([(hm, tag)], (18, 14), flipped=[mirrored], flip_index=FLIP)
    plain, plain_tags = aggregate([(hm, tag)], (18, 14))
    np.testing.assert_allclose(heat, plain, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tags[:, :, 1], plain_tags[:, :, 0], rtol=1e-12, atol=1e-15)


def test_equals_higherhrnet_pipeline_bit_for_bit():
    gen = torch.Generator().manual_seed(6)
    sizes = [(16, 24), (8, 12), (4, 6)]  # scales 2, 1, 0.5 (descending, as HigherHRNet)
    outputs = [
        (torch.rand(1, K, *s, generator=gen), torch.randn(1, K, *s, generator=gen)) for s in sizes
    ]
    flipped = [
        (torch.rand(1, K, *s, generator=gen), torch.randn(1, K, *s, generator=gen)) for s in sizes
    ]
    base = (32, 48)
    expected_heat, expected_tags = higherhrnet_aggregate(outputs, flipped, FLIP, base, 1)
    heat, tags = aggregate(outputs, base, flipped=flipped, flip_index=FLIP, tag_scales=[1])
    assert torch.equal(heat, expected_heat)
    assert torch.equal(tags, expected_tags)


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_and_torch_agree(device):
    rng = np.random.default_rng(7)
    outs = [
        (make_maps(rng, (2, K, 6, 8)), make_maps(rng, (2, K, 6, 8))),
        (make_maps(rng, (2, K, 3, 4)), make_maps(rng, (2, K, 3, 4))),
    ]
    flips = [
        (make_maps(rng, (2, K, 6, 8)), make_maps(rng, (2, K, 6, 8))),
        (make_maps(rng, (2, K, 3, 4)), make_maps(rng, (2, K, 3, 4))),
    ]
    heat_np, tags_np = aggregate(outs, (12, 16), flipped=flips, flip_index=FLIP, tag_scales="all")

    def to_t(pairs):
        return [tuple(torch.from_numpy(a).to(device) for a in p) for p in pairs]

    heat_t, tags_t = aggregate(
        to_t(outs), (12, 16), flipped=to_t(flips), flip_index=FLIP, tag_scales="all"
    )
    assert isinstance(heat_np, np.ndarray)
    assert isinstance(tags_np, np.ndarray)
    assert heat_t.device.type == tags_t.device.type == device
    assert heat_np.dtype == np.float32
    assert heat_t.dtype == torch.float32
    np.testing.assert_allclose(heat_t.cpu().numpy(), heat_np, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tags_t.cpu().numpy(), tags_np, rtol=1e-6, atol=1e-7)
    assert tags_np.shape == (2, K, 4, 12, 16)


def test_dtypes_and_gradients():
    rng = np.random.default_rng(8)
    hm = make_maps(rng, (1, K, 4, 4), np.float64)
    heat, tags = aggregate([(hm, make_maps(rng, (1, K, 4, 4), np.float32))], size=(8, 8))
    assert heat.dtype == tags.dtype == np.float64  # promoted, never lowered
    hm16 = make_maps(rng, (1, K, 4, 4), np.float16)
    heat, tags = aggregate([(hm16, hm16)], size=(8, 8))
    assert heat.dtype == tags.dtype == np.float16
    ht = torch.rand(1, K, 2, 3, dtype=torch.float64, requires_grad=True)
    tt = torch.rand(1, K, 2, 3, dtype=torch.float64, requires_grad=True)
    heat, tags = aggregate([(ht, tt)], (4, 6), flipped=[(ht, tt)], flip_index=FLIP)
    assert heat.dtype == tags.dtype == torch.float64 and heat.requires_grad and tags.requires_grad
    # the gradients of both outputs with respect to both inputs, against finite differences
    # (flip, the flip permutation, resizing and averaging are all differentiable)
    assert torch.autograd.gradcheck(
        lambda h, t: aggregate([(h, t)], (4, 6), flipped=[(h, t)], flip_index=FLIP),
        (ht, tt),
        fast_mode=True,
    )


def test_tags_may_be_none_outside_tag_scales():
    rng = np.random.default_rng(9)
    hm0, tag0 = make_maps(rng, (1, K, 4, 4)), make_maps(rng, (1, K, 2, 4, 4))
    hm1 = make_maps(rng, (1, K, 8, 8))
    heat, tags = aggregate([(hm0, tag0), (hm1, None)], size=(8, 8))
    assert heat.shape == (1, K, 8, 8)
    assert tags.shape == (1, K, 2, 8, 8)
    _, tags2 = aggregate(
        [(hm0, tag0), (hm1, None)],
        size=(8, 8),
        flipped=[(hm0, tag0), (hm1, None)],
        flip_index=FLIP,
    )
    assert tags2.shape == (1, K, 4, 8, 8)


def test_batch_of_zero():
    heat, tags = aggregate([(np.zeros((0, K, 4, 4)), np.zeros((0, K, 4, 4)))], size=(8, 8))
    assert heat.shape == (0, K, 8, 8)
    assert tags.shape == (0, K, 1, 8, 8)


def _pair(shape=(1, K, 4, 4), tag_shape=None):
    return (np.zeros(shape, dtype=np.float32), np.zeros(tag_shape or shape, dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"outputs": _pair()}, TypeError, r"outputs\[0\] must be a \(heatmaps, tags\) pair.*list"),
        ({"outputs": []}, ValueError, "at least one"),
        ({"outputs": "abc"}, TypeError, "outputs must be a sequence"),
        ({"outputs": [(np.zeros((1, K, 4, 4)),)]}, TypeError, r"outputs\[0\] must be a"),
        (
            {"outputs": [_pair(), _pair((2, K, 4, 4))]},
            ValueError,
            r"outputs\[1\]\[0\] \(heatmaps\) must have B=1",
        ),
        ({"outputs": [_pair(), _pair((1, 3, 4, 4))]}, ValueError, "K=17"),
        (
            {"outputs": [_pair(tag_shape=(1, K, 5, 4))]},
            ValueError,
            r"outputs\[0\]\[1\] \(tags\) must have shape",
        ),
        ({"outputs": [_pair((1, K, 1, 4, 4))]}, ValueError, r"heatmaps\) must have shape"),
        (
            {"outputs": [(np.zeros((1, K, 4, 4), dtype=np.int32), None)], "tag_scales": [0]},
            TypeError,
            "floating-point",
        ),
        (
            {"outputs": [(np.full((1, K, 4, 4), np.inf), np.zeros((1, K, 4, 4)))]},
            ValueError,
            "NaN or infinite",
        ),
        ({"outputs": [(np.zeros((1, K, 4, 4)), None)]}, ValueError, "is None but scale 0"),
        (
            {"outputs": [(np.zeros((1, K, 4, 4)), torch.zeros(1, K, 4, 4))]},
            TypeError,
            "all as tensors",
        ),
        ({"outputs": [_pair()], "flipped": [_pair()]}, ValueError, "flip_index is required"),
        (
            {"outputs": [_pair()], "flipped": [_pair(), _pair()], "flip_index": FLIP},
            ValueError,
            "one pair per scale",
        ),
        (
            {"outputs": [_pair()], "flipped": [_pair((1, K, 4, 5))], "flip_index": FLIP},
            ValueError,
            r"flipped\[0\]\[0\] \(heatmaps\) must have the shape",
        ),
        (
            {
                "outputs": [_pair()],
                "flipped": [_pair(tag_shape=(1, K, 2, 4, 4))],
                "flip_index": FLIP,
            },
            ValueError,
            r"flipped\[0\]\[1\] \(tags\) must have the shape",
        ),
        (
            {"outputs": [_pair()], "flipped": [_pair()], "flip_index": FLIP[:-1]},
            ValueError,
            "flip_index must have length K=17",
        ),
        ({"outputs": [_pair()], "size": (0, 4)}, ValueError, r"size\[0\] \(H\) must be >= 1"),
        ({"outputs": [_pair()], "size": (4.0, 4)}, TypeError, r"size\[0\] \(H\) must be an int"),
        ({"outputs": [_pair()], "size": 4}, TypeError, "size must be a pair"),
        ({"outputs": [_pair()], "tag_scales": [1]}, ValueError, r"tag_scales\[0\] must be <= 0"),
        ({"outputs": [_pair()], "tag_scales": []}, ValueError, "at least one scale"),
        ({"outputs": [_pair(), _pair()], "tag_scales": [0, 0]}, ValueError, "must not repeat"),
        ({"outputs": [_pair()], "tag_scales": "first"}, ValueError, "'all'"),
        ({"outputs": [_pair()], "tag_scales": 0}, TypeError, "tag_scales must be"),
        ({"outputs": [_pair()], "align_corners": 1}, TypeError, "align_corners must be a bool"),
        ({"outputs": [_pair()], "flipped": _pair()[0], "flip_index": FLIP}, TypeError, "flipped"),
    ],
)
def test_aggregate_errors(kwargs, exc, match):
    kwargs = dict(kwargs)
    outputs = kwargs.pop("outputs")
    with pytest.raises(exc, match=match):
        aggregate(outputs, **kwargs)


@pytest.mark.cuda
def test_tensors_on_different_devices():
    hm = torch.zeros(1, K, 4, 4)
    with pytest.raises(ValueError, match="is on"):
        aggregate([(hm, hm.cuda())])


def test_public_names():
    # this module imported associative_embedding.aggregation above; the package
    # attribute must still be the function, not a submodule of the same name
    import associative_embedding as ae

    assert ae.aggregate is aggregate
    assert ae.flip_maps is flip_maps
