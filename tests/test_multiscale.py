"""MultiScaleFlip: scales + flip + aggregation as one torch Module, and its ONNX export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import associative_embedding as ae

FLIP = list(ae.COCO_KEYPOINTS.flip_index)
K = len(FLIP)


class TinyNet(nn.Module):
    """Stride-2 conv net: K heatmaps then K * D tags, joint-major (pose-ae-train's layout)."""

    def __init__(self, k=K, d=1, extra=0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, k * (1 + d) + extra, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


class PairNet(TinyNet):
    """Returns (heatmaps (B, K, h, w), tags (B, K, D, h, w)) itself."""

    def __init__(self, d=2):
        super().__init__(d=d)
        self.d = d

    def forward(self, x):
        out = super().forward(x)
        return out[:, :K], out[:, K:].unflatten(1, (K, self.d))


def split_reference(out, d):
    """Slow split: heatmap k is channel k, tag (k, j) is channel K + k * D + j."""
    b, _, h, w = out.shape
    heatmaps = torch.stack([out[:, k] for k in range(K)], 1)
    tags = torch.empty(b, K, d, h, w)
    for k in range(K):
        for j in range(d):
            tags[:, k, j] = out[:, K + k * d + j]
    return heatmaps, (tags[:, :, 0] if d == 1 else tags)


def mirror_reference(x, shift):
    """Mirror along W, then move left by ``shift`` columns with zeros filled in."""
    w = x.shape[-1]
    out = torch.zeros_like(x)
    for j in range(w):
        src = w - 1 - (j + shift)
        if src >= 0:
            out[..., j] = x[..., src]
    return out


def scaled_input(images, s, multiple):
    if s == 1.0:
        return images
    h, w = images.shape[-2:]
    side = tuple(max(multiple, math.ceil(v * s / multiple) * multiple) for v in (h, w))
    return F.interpolate(images, size=side, mode="bilinear", align_corners=False)


def by_hand(net, images, *, scales, flip, d, shift=0, multiple=1, size=None, tag_scales=None):
    """The network run view by view, split by hand, merged by ae.aggregate."""
    outputs, flipped = [], []
    with torch.no_grad():
        for s in scales:
            x = scaled_input(images, s, multiple)
            outputs.append(split_reference(net(x), d))
            if flip:
                flipped.append(split_reference(net(mirror_reference(x, shift)), d))
    if tag_scales is None:
        tag_scales = (list(scales).index(1.0),) if 1.0 in scales else (0,)
    return ae.aggregate(
        outputs,
        size,
        flipped=flipped if flip else None,
        flip_index=FLIP if flip else None,
        tag_scales=tag_scales,
    )


@pytest.mark.parametrize(
    ("scales", "flip", "d", "shift", "size"),
    [
        ((1.0,), True, 1, 0, None),
        ((1.0,), True, 2, 1, "input"),
        ((1.0,), False, 1, 0, None),
        ((2.0, 1.0, 0.5), True, 1, 0, "input"),
        ((1.0, 0.75), True, 2, 2, (20, 12)),
        ((0.5,), True, 1, 0, None),
    ],
)
def test_equals_aggregate_of_the_same_outputs(scales, flip, d, shift, size):
    net = TinyNet(d=d).eval()
    images = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    model = ae.MultiScaleFlip(
        net,
        scales=scales,
        flip_index=FLIP if flip else None,
        num_joints=K,
        tag_dim=d,
        flip_shift=shift,
        size=size,
        size_multiple=8,
    ).eval()
    with torch.no_grad():
        heatmaps, tags = model(images)
    ref_size = (32, 24) if size == "input" else size
    ref_h, ref_t = by_hand(
        net, images, scales=scales, flip=flip, d=d, shift=shift, multiple=8, size=ref_size
    )
    assert heatmaps.shape == ref_h.shape
    assert tags.shape == ref_t.shape
    assert tags.ndim == 5
    assert tags.shape[2] == d * (2 if flip else 1)
    # the merge is aggregate's own code: bit for bit
    assert torch.equal(heatmaps, ref_h)
    assert torch.equal(tags, ref_t)


def test_tag_scales_default_is_scale_one_and_can_be_chosen():
    net = TinyNet().eval()
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    scales = (2.0, 1.0)
    default = ae.MultiScaleFlip(net, scales=scales, num_joints=K, flip_index=FLIP).eval()
    both = ae.MultiScaleFlip(
        net, scales=scales, num_joints=K, flip_index=FLIP, tag_scales="all"
    ).eval()
    with torch.no_grad():
        _, t1 = default(images)
        _, t_all = both(images)
    ref = by_hand(net, images, scales=scales, flip=True, d=1, tag_scales=(1,))[1]
    assert torch.equal(t1, ref)
    ref_all = by_hand(net, images, scales=scales, flip=True, d=1, tag_scales=(0, 1))[1]
    assert torch.equal(t_all, ref_all)
    assert t_all.shape[2] == 4


def test_split_callable_and_pair_output_agree_with_num_joints():
    images = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(3))
    pair_net = PairNet(d=2).eval()
    options = dict(scales=(1.0, 0.5), flip_index=FLIP, size="input", size_multiple=4)
    from_pair = ae.MultiScaleFlip(pair_net, **options).eval()
    from_split = ae.MultiScaleFlip(
        pair_net, split=lambda out: (out[0] * 1.0, out[1]), **options
    ).eval()
    plain = TinyNet(d=2).eval()  # same weights (same seed) as pair_net
    from_channels = ae.MultiScaleFlip(plain, num_joints=K, tag_dim=2, **options).eval()
    with torch.no_grad():
        a, b, c = from_pair(images), from_split(images), from_channels(images)
    for x, y in ((a, b), (a, c)):
        assert torch.equal(x[0], y[0])
        assert torch.equal(x[1], y[1])


def test_extra_channels_are_ignored():
    net = TinyNet(extra=3).eval()
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    model = ae.MultiScaleFlip(net, num_joints=K, flip_index=FLIP).eval()
    with torch.no_grad():
        heatmaps, tags = model(images)
        out = net(images)
    assert heatmaps.shape == (1, K, 8, 8)
    assert tags.shape == (1, K, 2, 8, 8)
    assert torch.equal(tags[:, :, 0], out[:, K : 2 * K])


def test_is_a_module_holding_the_network():
    net = TinyNet()
    model = ae.MultiScaleFlip(net, num_joints=K)
    assert isinstance(model, nn.Module)
    assert set(model.state_dict()) == {f"network.{k}" for k in net.state_dict()}
    model.eval()
    assert not net.training
    assert "scales=(1.0,)" in repr(model)


def test_gradients_flow_to_the_network():
    net = TinyNet()
    model = ae.MultiScaleFlip(net, num_joints=K, flip_index=FLIP, scales=(1.0, 0.5))
    heatmaps, tags = model(torch.rand(1, 3, 16, 16))
    (heatmaps.sum() + tags.sum()).backward()
    assert net.conv1.weight.grad is not None
    assert torch.isfinite(net.conv1.weight.grad).all()
    assert net.conv1.weight.grad.abs().sum() > 0


def test_dtype_follows_the_network():
    net = TinyNet().double().eval()
    model = ae.MultiScaleFlip(net, num_joints=K, flip_index=FLIP).eval()
    with torch.no_grad():
        heatmaps, tags = model(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert heatmaps.dtype == torch.float64
    assert tags.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"network": lambda x: x}, TypeError, "network must be a torch.nn.Module"),
        ({"scales": ()}, ValueError, "at least one scale"),
        ({"scales": 1.0}, TypeError, "scales must be a sequence"),
        ({"scales": (1.0, -0.5)}, ValueError, r"scales\[1\] must be positive"),
        ({"scales": (1.0, float("nan"))}, ValueError, r"scales\[1\] must be positive"),
        ({"scales": (1.0, 1.0)}, ValueError, "must not repeat"),
        ({"scales": (True,)}, TypeError, r"scales\[0\] must be a number"),
        ({"split": 3}, TypeError, "split must be callable"),
        ({"split": lambda o: o}, ValueError, "split or num_joints, not both"),
        ({"num_joints": 0}, ValueError, "num_joints"),
        ({"tag_dim": 0}, ValueError, "tag_dim"),
        ({"flip_index": [0, 1]}, ValueError, "flip_index must have length K=17"),
        ({"flip_index": [0] * K}, ValueError, "permutation"),
        ({"size": "maps"}, ValueError, "size must be None, 'input' or"),
        ({"size": (0, 4)}, ValueError, "size"),
        ({"tag_scales": (3,)}, ValueError, "tag_scales"),
        ({"tag_scales": ()}, ValueError, "tag_scales"),
        ({"align_corners": 1}, TypeError, "align_corners must be a bool"),
        ({"flip_shift": -1}, ValueError, "flip_shift"),
        ({"size_multiple": 0}, ValueError, "size_multiple"),
    ],
)
def test_bad_options_are_reported(kwargs, error, match):
    options = {"network": TinyNet(), "num_joints": K, **kwargs}
    network = options.pop("network")
    with pytest.raises(error, match=match):
        ae.MultiScaleFlip(network, **options)


def test_bad_inputs_and_outputs_are_reported():
    model = ae.MultiScaleFlip(TinyNet(), num_joints=K)
    with pytest.raises(TypeError, match=r"images must be a torch\.Tensor"):
        model(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"float \(B, C, H, W\)"):
        model(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"float \(B, C, H, W\)"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    too_few = ae.MultiScaleFlip(TinyNet(), num_joints=K, tag_dim=3)
    with pytest.raises(ValueError, match=r"at least K \* \(1 \+ D\) = 68 channels"):
        too_few(torch.zeros(1, 3, 8, 8))
    no_split = ae.MultiScaleFlip(TinyNet())
    with pytest.raises(TypeError, match=r"\(heatmaps, tags\) pair"):
        no_split(torch.zeros(1, 3, 8, 8))
    pair = ae.MultiScaleFlip(PairNet(), flip_index=list(range(5)))
    with pytest.raises(ValueError, match="flip_index has length 5"):
        pair(torch.zeros(1, 3, 8, 8))
    bad_tags = ae.MultiScaleFlip(
        PairNet(),
        split=lambda out: (out[0], out[1][..., :2, :]),  # tags of another size
    )
    with pytest.raises(ValueError, match="must agree in B, K, h and w"):
        bad_tags(torch.zeros(1, 3, 8, 8))


# ------------------------------------------------------------------ ONNX export


def _export_and_session(model, example, tmp_path, multiple):
    pytest.importorskip("onnx", reason="onnx (extra onnx) is not installed")
    pytest.importorskip("onnxscript", reason="onnxscript (extra onnx) is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (extra onnx) is not installed")
    path = tmp_path / "model.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["heatmaps", "tags"],
            dynamic_shapes={"images": {0: batch, 2: multiple * h, 3: multiple * w}},
            external_data=False,
            verbose=False,
        )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_eager_with_dynamic_batch_and_size(tmp_path):
    model = ae.MultiScaleFlip(
        TinyNet(d=2),
        scales=(1.0, 0.5),
        flip_index=FLIP,
        num_joints=K,
        tag_dim=2,
        size="input",
        flip_shift=1,
        size_multiple=8,
    ).eval()
    session = _export_and_session(model, torch.rand(2, 3, 32, 24), tmp_path, 8)
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 32, 24), (1, 3, 16, 40), (3, 3, 48, 32)]:
        images = rng.random(shape, dtype=np.float32)
        heatmaps, tags = session.run(["heatmaps", "tags"], {"images": images})
        with torch.no_grad():
            ref_h, ref_t = model(torch.from_numpy(images))
        assert heatmaps.shape == tuple(ref_h.shape) == (shape[0], K, *shape[2:])
        assert tags.shape == tuple(ref_t.shape) == (shape[0], K, 4, *shape[2:])
        np.testing.assert_allclose(heatmaps, ref_h.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(tags, ref_t.numpy(), rtol=0, atol=1e-4)
