"""associative_embedding.mmpose against mmpose 1.3.2's own codec, loss and head.

The codec and loss tests need mmpose (``pip install "associative-embedding[mmpose]"``,
where mmcv-lite is enough). The head and training tests need ``mmpose.models``, which
imports mmcv's compiled ops, mmdet and xtcocotools (``.ci/install_mmpose.sh`` builds
them). Without them the tests skip with the reason; in CI (``CI=true``) they fail
instead, because CI installs everything.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import associative_embedding as ae

IN_CI = os.environ.get("CI") == "true"
#: mmpose's COCO config: decode_keypoint_order
ORDER = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
#: mmpose's COCO metainfo: flip_indices
FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
#: the config mmpose 1.3.2 ships inside its package (mmpose/.mim/configs/...)
SHIPPED = "body_2d_keypoint/associative_embedding/coco/ae_hrnet-w32_8xb24-300e_coco-512x512.py"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mmpose" / "ae_fast_coco-512x512.py"


def need(module, why):
    """Import ``module`` or skip with ``why``; in CI a missing module is an error.

    mmcv, mmdet and mmpose warn while importing (moved names, deprecations); those are
    theirs, not ours, and the suite turns warnings into errors: they are ignored here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if IN_CI:
            return importlib.import_module(module)
        return pytest.importorskip(module, reason=why)


@pytest.fixture(scope="module")
def mm():
    """The module under test (registers the codec and the loss in mmpose)."""
    need("mmpose", "mmpose 1.x not installed: pip install 'associative-embedding[mmpose]'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # mmpose's registries import mmpose.models on first use where it imports (mmcv
        # with its ops): import it now, with its import-time warnings ignored
        with contextlib.suppress(ImportError):
            importlib.import_module("mmpose.models")
        return importlib.import_module("associative_embedding.mmpose")


@pytest.fixture(scope="module")
def models():
    """``mmpose.models`` (heads and losses): needs mmcv with its compiled ops."""
    need("mmpose", "mmpose 1.x not installed: pip install 'associative-embedding[mmpose]'")
    return need(
        "mmpose.models",
        "mmpose.models needs mmcv with compiled ops, mmdet and xtcocotools "
        "(see .ci/install_mmpose.sh); mmcv-lite is not enough",
    )


def mmpose_loss_class():
    """mmpose's AssociativeEmbeddingLoss; its file alone where mmpose.models cannot import."""
    try:
        from mmpose.models.losses import AssociativeEmbeddingLoss
    except ImportError:  # mmcv-lite: load the loss's own file, which needs torch and the registry
        import mmpose

        path = Path(mmpose.__file__).parent / "models" / "losses" / "ae_loss.py"
        name = "_mmpose_ae_loss_for_tests"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
        AssociativeEmbeddingLoss = module.AssociativeEmbeddingLoss
    return AssociativeEmbeddingLoss


def sorted_like_ours(result):
    """mmpose's batch_decode output with each image's people sorted by score (stable)."""
    keypoints, scores, instance_scores = result
    out = ([], [], [])
    for kp, sc, inst in zip(keypoints, scores, instance_scores, strict=True):
        order = np.argsort(-inst, kind="stable")
        out[0].append(kp[order])
        out[1].append(sc[order])
        out[2].append(inst[order])
    return out


def assert_same_people(ours, theirs):
    """Equal arrays (bit for bit) per image, after sorting mmpose's people by score."""
    theirs = sorted_like_ours(theirs)
    assert len(ours[0]) == len(theirs[0])
    for name, a_list, b_list in zip(
        ("keypoints", "scores", "instance scores"), ours, theirs, strict=True
    ):
        for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
            assert a.dtype == b.dtype == np.float32, (name, a.dtype, b.dtype)
            assert a.shape == b.shape, f"image {i} {name}: {a.shape} vs mmpose {b.shape}"
            np.testing.assert_array_equal(a, b, err_msg=f"image {i} {name}")


def random_maps(rng, b, k, h, w, dim, people=None):
    """Heatmaps (B, K, H, W) and mmpose-layout tags (B, L*K, H, W), float32 tensors.

    Without ``people``: noise (many weak peaks, tags everywhere). With ``people``:
    ``people`` random persons rendered as Gaussians, tags close to one value per
    person near its joints, so that grouping has a right answer. No two tags are
    exactly equal: mmpose keys its people by the float value of their first tag, so
    equal tags merge people there (a hazard of its dict, not a grouping rule).
    """
    if people is None:
        heat = rng.random((b, k, h, w), dtype=np.float32) * 0.6
        tags = rng.normal(size=(b, dim * k, h, w)).astype(np.float32) * 1.5
        return torch.from_numpy(heat), torch.from_numpy(tags)
    kp = np.zeros((b, people, k, 3))
    kp[..., 0] = rng.uniform(0, w, (b, people, k))
    kp[..., 1] = rng.uniform(0, h, (b, people, k))
    kp[..., 2] = rng.random((b, people, k)) < 0.8
    heat = ae.render_heatmaps(kp, (h, w), sigma=2.0) * rng.uniform(0.5, 1.0, (b, k, 1, 1))
    heat = heat + rng.random(heat.shape) * 0.05
    tags = rng.normal(size=(b, dim, k, h, w)) * 0.1
    for bi in range(b):
        for n in range(people):
            value = rng.normal(size=dim) * 3
            for j in range(k):
                if kp[bi, n, j, 2]:
                    x, y = int(kp[bi, n, j, 0]), int(kp[bi, n, j, 1])
                    patch = tags[bi, :, j, max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4]
                    patch[:] = value[:, None, None] + rng.normal(size=patch.shape) * 0.05
    tags = tags.reshape(b, dim * k, h, w)
    return torch.from_numpy(heat.astype(np.float32)), torch.from_numpy(tags.astype(np.float32))


def codec_args(**changes):
    """mmpose's COCO AE config's decoder (heatmap size = input size)."""
    args = dict(
        input_size=(64, 64),
        heatmap_size=(64, 64),
        sigma=2,
        decode_topk=30,
        decode_center_shift=0.5,
        decode_keypoint_order=ORDER,
        decode_max_instances=30,
    )
    args.update(changes)
    return args


# --- import contract ----------------------------------------------------------------------
def test_importing_the_package_does_not_import_mmpose():
    code = (
        "import sys, associative_embedding as ae; ae.decode; ae.grouping_loss\n"
        "print(sorted(m for m, v in sys.modules.items() if m.split('.')[0] == 'mmpose' and v))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_mmpose_the_module_says_what_to_install():
    code = (
        "import sys; sys.modules['mmpose'] = None\n"
        "try:\n    import associative_embedding.mmpose\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install" in out.stdout and "associative-embedding[mmpose]" in out.stdout
    assert "mmcv" in out.stdout


def test_registered_in_mmpose_registries(mm):
    from mmpose.registry import KEYPOINT_CODECS, MODELS

    codec = KEYPOINT_CODECS.build(dict(type="FastAssociativeEmbedding", **codec_args()))
    assert isinstance(codec, mm.FastAssociativeEmbedding)
    assert codec.support_batch_decoding
    assert codec.decode_config == ae.DecodeConfig.preset(
        "mmpose-1.x", joint_order=tuple(ORDER), center_shift=0.5
    )
    # MODELS.build imports mmpose.models (mmcv's ops): see test_loss_builds_from_the_registry
    assert MODELS.module_dict["FastAssociativeEmbeddingLoss"] is mm.FastAssociativeEmbeddingLoss


def test_loss_builds_from_the_registry(models, mm):
    from mmpose.registry import MODELS

    loss = MODELS.build(dict(type="FastAssociativeEmbeddingLoss", loss_weight=1e-3))
    assert isinstance(loss, mm.FastAssociativeEmbeddingLoss) and loss.loss_weight == 1e-3


# --- encode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("people", [0, 1, 7])
def test_encode_equals_mmpose(mm, rng, dtype, people):
    from mmpose.codecs import AssociativeEmbedding

    args = dict(input_size=(256, 192), heatmap_size=(64, 48), decode_keypoint_order=ORDER)
    ours, theirs = mm.FastAssociativeEmbedding(**args), AssociativeEmbedding(**args)
    for _ in range(5):
        # joints inside, on and beyond every border (incl. -1 < x < 0 that rounds into pixel 0)
        kp = rng.uniform(-12, 270, (people, 17, 2)).astype(dtype)
        kp[:, :3] = rng.choice([-4.0, -2.1, -1.9, 0.0, 1.9, 254.0, 255.9, 256.0], (people, 3, 2))
        vis = rng.choice([0.0, 0.3, 0.5, 0.51, 1.0, 2.0], (people, 17)).astype(np.float32)
        a, b = ours.encode(kp, vis), theirs.encode(kp, vis)
        assert a.keys() == b.keys() == {"heatmaps", "keypoint_indices", "keypoint_weights"}
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    a, b = ours.encode(kp), theirs.encode(kp)  # visibility omitted: all visible
    np.testing.assert_array_equal(a["keypoint_indices"], b["keypoint_indices"])


def test_keypoint_indices_reach_the_packed_labels(mm):
    table = mm.FastAssociativeEmbedding(**codec_args()).label_mapping_table
    assert table["keypoint_indices"] == "keypoint_indices"
    assert table["keypoint_weights"] == "keypoint_weights"


# --- decode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("people", [None, 4, 12])
def test_batch_decode_equals_mmpose(mm, rng, dim, people):
    from mmpose.codecs import AssociativeEmbedding

    for args in (codec_args(), codec_args(input_size=(256, 192), heatmap_size=(64, 48))):
        w, h = args["heatmap_size"]
        heat, tags = random_maps(rng, 3, 17, h, w, dim, people)
        ours = mm.FastAssociativeEmbedding(**args).batch_decode(heat, tags)
        theirs = AssociativeEmbedding(**args).batch_decode(heat, tags)
        assert_same_people(ours, theirs)
        assert sum(len(s) for s in ours[2]) > 0  # people were found


def test_batch_decode_equals_mmpose_with_scale_and_no_instance_cap(mm, rng):
    from mmpose.codecs import AssociativeEmbedding

    # a scale factor of 4 and mmpose's default of no instance cap
    args = dict(
        input_size=(128, 128),
        heatmap_size=(32, 32),
        decode_keypoint_order=ORDER,
        decode_center_shift=0.5,
    )
    heat, tags = random_maps(rng, 2, 17, 32, 32, 1, 40)
    ours = mm.FastAssociativeEmbedding(**args).batch_decode(heat, tags)
    assert_same_people(ours, AssociativeEmbedding(**args).batch_decode(heat, tags))
    assert max(len(s) for s in ours[2]) > 30  # more people than the config's cap of 30
    # nothing above the threshold: empty arrays of the right shapes
    empty = mm.FastAssociativeEmbedding(**args).batch_decode(heat * 0, tags)
    assert_same_people(empty, AssociativeEmbedding(**args).batch_decode(heat * 0, tags))
    assert empty[0][0].shape == (0, 17, 2)


def test_center_shift_zero_same_people_filled_joints_may_differ(mm, rng):
    """mmpose's codec default decode_center_shift=0: the same people, detected joints and scores.

    mmpose reads a person's reference tag at int(x) of its *adjusted* joints, the
    pixel to the left of (or above) the peak for a joint moved by -0.25 when the
    shift is 0; the library reads it at the peak, as mmpose does with the config's
    0.5. Only the recovered (filled) joints can differ.
    """
    from mmpose.codecs import AssociativeEmbedding

    args = dict(input_size=(64, 64), heatmap_size=(64, 64), decode_keypoint_order=ORDER)
    heat, tags = random_maps(rng, 2, 17, 64, 64, 1, 6)
    ours = mm.FastAssociativeEmbedding(**args).batch_decode(heat, tags)
    theirs = sorted_like_ours(AssociativeEmbedding(**args).batch_decode(heat, tags))
    detected = ae.decode(
        heat,
        tags.view(2, 1, 17, 64, 64).transpose(1, 2),
        mm.FastAssociativeEmbedding(**args).decode_config,
        refine=False,
    )
    for i in range(2):
        np.testing.assert_array_equal(ours[2][i], theirs[2][i])
        mask = np.isfinite(detected[i].keypoints[..., 0])
        assert mask.any() and not mask.all()
        np.testing.assert_array_equal(ours[0][i][mask], theirs[0][i][mask])
        np.testing.assert_array_equal(ours[1][i][mask], theirs[1][i][mask])
        np.testing.assert_array_equal(ours[0][i][mask], detected[i].keypoints[mask][:, :2])


def test_batch_decode_accepts_float64_numpy_and_single_decode(mm, rng):
    codec = mm.FastAssociativeEmbedding(**codec_args())
    heat, tags = random_maps(rng, 2, 17, 64, 64, 2, 5)
    ref = codec.batch_decode(heat, tags)
    as64 = codec.batch_decode(heat.double().numpy(), tags.double().numpy())
    for a_list, b_list in zip(ref, as64, strict=True):
        for a, b in zip(a_list, b_list, strict=True):
            assert b.dtype == np.float32
            np.testing.assert_allclose(a, b, atol=1e-5)
    for i in range(2):
        one = codec.decode(heat[i].numpy(), tags[i].numpy())
        for j in range(3):
            np.testing.assert_array_equal(one[j], ref[j][i])


def test_codec_copies_pickles_and_reuses_its_buffer_across_shapes(mm, rng):
    import copy
    import pickle

    codec = mm.FastAssociativeEmbedding(**codec_args())
    small = random_maps(rng, 1, 17, 32, 32, 2, 3)
    big = random_maps(rng, 2, 17, 64, 64, 2, 5)
    want_small, want_big = codec.batch_decode(*small), codec.batch_decode(*big)
    for other in (copy.deepcopy(codec), pickle.loads(pickle.dumps(codec)), codec):
        for maps, want in ((big, want_big), (small, want_small), (big, want_big)):
            got = other.batch_decode(*maps)
            for a_list, b_list in zip(got, want, strict=True):
                for a, b in zip(a_list, b_list, strict=True):
                    np.testing.assert_array_equal(a, b)


def test_other_groupings(mm, rng):
    heat, tags = random_maps(rng, 2, 17, 64, 64, 1, 6)
    mmpose_like = mm.FastAssociativeEmbedding(**codec_args()).batch_decode(heat, tags)
    for grouping in ("crowd", "default", ae.DecodeConfig(), {"preset": "crowd", "regroup": 1}):
        codec = mm.FastAssociativeEmbedding(**codec_args(), grouping=grouping)
        # the codec's decode_* arguments override the grouping's own values
        assert codec.decode_config.max_instances == 30
        assert codec.decode_config.joint_order == tuple(ORDER)
        kp, sc, inst = codec.batch_decode(heat, tags)
        for i in range(2):
            assert np.isfinite(kp[i]).all() and kp[i].shape[1:] == (17, 2)
            assert ((sc[i] == 0) | (sc[i] > 0)).all()
            assert len(inst[i]) > 0
    crowd = mm.FastAssociativeEmbedding(**codec_args(), grouping="crowd")
    assert crowd.decode_config.regroup == ae.DecodeConfig.preset("crowd").regroup > 0
    kp, sc, _ = crowd.batch_decode(heat, tags)
    missing = sc[0] == 0
    assert (kp[0][missing] == 0).all()  # not filled: (0, 0), score 0
    assert any(
        len(a) != len(b) or not np.array_equal(a, b)
        for a, b in zip(kp, mmpose_like[0], strict=True)
    )


def test_codec_rejects_bad_input(mm):
    with pytest.raises(ValueError, match="use_udp"):
        mm.FastAssociativeEmbedding(**codec_args(), use_udp=True)
    with pytest.raises(TypeError, match="grouping"):
        mm.FastAssociativeEmbedding(**codec_args(), grouping=3)
    with pytest.raises(ValueError, match="name"):
        mm.FastAssociativeEmbedding(**codec_args(), grouping="nonsense")
    with pytest.raises(ValueError, match="nms_kernel"):
        mm.FastAssociativeEmbedding(**codec_args(decode_nms_kernel=4))
    codec = mm.FastAssociativeEmbedding(**codec_args())
    heat = torch.zeros(1, 17, 8, 8)
    with pytest.raises(ValueError, match=r"batch_tags must have shape \(B, L\*K, H, W\)"):
        codec.batch_decode(heat, torch.zeros(1, 20, 8, 8))
    with pytest.raises(ValueError, match="batch_heatmaps must have shape"):
        codec.batch_decode(heat[0], torch.zeros(1, 17, 8, 8))
    with pytest.raises(TypeError, match="batch_tags must be"):
        codec.batch_decode(heat, [[0.0]])
    bad = heat.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        codec.batch_decode(bad, torch.zeros(1, 17, 8, 8))
    with pytest.raises(ValueError, match="3 dimensions"):
        codec.decode(heat, heat[0])


# --- loss -----------------------------------------------------------------------------------
def random_indices(rng, counts, k, hw, as_tensor=False):
    items = []
    for n in counts:
        idx = np.stack([rng.integers(0, hw, (n, k)), rng.random((n, k)) < 0.6], -1)
        items.append(torch.from_numpy(idx.astype(np.int64)))
    if as_tensor:
        n = max(counts)
        padded = torch.zeros(len(counts), n, k, 2, dtype=torch.int64)
        for i, t in enumerate(items):
            padded[i, : len(t)] = t
        return padded
    return items


def loss_and_grads(loss, tags, indices):
    tags = tags.detach().clone().requires_grad_(True)
    pull, push = loss(tags, indices)
    g_pull = torch.autograd.grad(pull, tags, retain_graph=True)[0]
    g_push = torch.autograd.grad(push, tags)[0]
    return pull.detach(), push.detach(), g_pull, g_push


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_loss_equals_mmpose_in_values_and_gradients(mm, rng, dim, dtype):
    reference = mmpose_loss_class()(loss_weight=0.3, push_loss_factor=0.7)
    ours = mm.FastAssociativeEmbeddingLoss(loss_weight=0.3, push_loss_factor=0.7)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-7)
    counts = [0, 1, 2, 9, 30]  # no person, one (push 0), several
    for as_tensor in (False, True):
        tags = torch.tensor(rng.normal(size=(5, dim * 17, 12, 10)), dtype=dtype)
        indices = random_indices(rng, counts, 17, 120, as_tensor)
        want = loss_and_grads(reference, tags, indices)
        got = loss_and_grads(ours, tags, indices)
        for name, a, b in zip(("pull", "push", "d pull", "d push"), got, want, strict=True):
            assert a.dtype == b.dtype == dtype, name
            torch.testing.assert_close(a, b, **tol, msg=name)
        assert float(want[1]) > 0 and float(want[0]) > 0


def test_loss_of_separated_tags_is_mmpose_push_offset(mm):
    # two people with tags 0 and 10, all joints equal: pull 0; mmpose's push keeps the
    # diagonal: (2 + 2 exp(-100)) / (2 + 1e-6) * 0.5
    tags = torch.zeros(1, 2, 4, 4)
    tags[0, :, :, 2:] = 10.0
    indices = [torch.tensor([[[0, 1], [4, 1]], [[3, 1], [7, 1]]])]
    pull, push = mm.FastAssociativeEmbeddingLoss()(tags, indices)
    assert float(pull) == 0.0
    assert float(push) == pytest.approx(0.5 * 2 / (2 + 1e-6), rel=1e-6)


@pytest.mark.parametrize("skip_empty_channel", [False, True])
def test_bottomup_heatmap_loss_is_keypoint_mse_loss_without_weights(
    models, mm, rng, skip_empty_channel
):
    from mmpose.models.losses import KeypointMSELoss

    out = torch.tensor(rng.normal(size=(3, 17, 16, 16)), requires_grad=True)
    target = torch.tensor(rng.random((3, 17, 16, 16)))
    target[0, 3] = 0  # an empty channel
    mask = torch.tensor(rng.random((3, 1, 16, 16)) > 0.3).double()
    options = dict(skip_empty_channel=skip_empty_channel, loss_weight=0.7)
    for m in (None, mask):
        want = KeypointMSELoss(**options)(out, target, None, m)
        got = mm.BottomupHeatmapMSELoss(**options)(out, target, torch.ones(9, 17), m)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        g_want, g_got = (torch.autograd.grad(v, out)[0] for v in (want, got))
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="same shape"):
        mm.BottomupHeatmapMSELoss()(out, target[:2])
    with pytest.raises(ValueError, match="does not broadcast"):
        mm.BottomupHeatmapMSELoss()(out, target, None, mask[:, :, :8])


def test_loss_rejects_bad_input(mm):
    loss = mm.FastAssociativeEmbeddingLoss()
    tags = torch.zeros(2, 17, 4, 4)
    good = [torch.zeros(1, 17, 2, dtype=torch.int64)] * 2
    with pytest.raises(TypeError, match="floating"):
        loss(tags.long(), good)
    with pytest.raises(ValueError, match="one entry per image"):
        loss(tags, good[:1])
    with pytest.raises(ValueError, match="not a multiple"):
        loss(torch.zeros(2, 20, 4, 4), good)
    bad = torch.tensor([[[16, 1]] * 17])
    with pytest.raises(ValueError, match="outside"):
        loss(tags, [bad, bad])
    with pytest.raises(TypeError, match="keypoint_indices"):
        loss(tags, 3)
    nan = tags.clone()
    nan[:] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loss(nan, [torch.tensor([[[0, 1]] * 17])] * 2)


# --- inside mmpose's head -----------------------------------------------------------------------
def shipped_config():
    """mmpose's shipped AE config, read from the installed package (no download).

    By its path: mmengine resolves an ``mmpose::`` prefix through pkg_resources,
    which setuptools >= 81 no longer has.
    """
    import mmpose
    from mmengine.config import Config

    return Config.fromfile(str(Path(mmpose.__file__).parent / ".mim" / "configs" / SHIPPED))


def build_heads(mm, keypoint_loss=None):
    """mmpose's head from the shipped settings, with mmpose's codec/loss and with ours."""
    from mmpose.registry import MODELS

    cfg = shipped_config()
    head_cfg = cfg.model.head.to_dict()
    # the shipped settings this comparison is about
    assert head_cfg["decoder"]["heatmap_size"] == head_cfg["decoder"]["input_size"] == (512, 512)
    assert cfg.model.test_cfg["flip_test"] and cfg.model.test_cfg["restore_heatmap_size"]
    if keypoint_loss is not None:
        head_cfg["keypoint_loss"] = keypoint_loss
    theirs = MODELS.build(head_cfg)
    head_cfg["decoder"]["type"] = "FastAssociativeEmbedding"
    head_cfg["tag_loss"]["type"] = "FastAssociativeEmbeddingLoss"
    ours = MODELS.build(head_cfg)
    ours.load_state_dict(theirs.state_dict())
    assert isinstance(ours.decoder, mm.FastAssociativeEmbedding)
    return theirs, ours, cfg.model.test_cfg.to_dict()


def data_samples(b, size=512):
    from mmpose.structures import PoseDataSample

    samples = []
    for _ in range(b):
        s = PoseDataSample()
        s.set_metainfo(dict(img_shape=(size, size), flip_indices=FLIP, input_size=(size, size)))
        samples.append(s)
    return samples


def synthetic_features(rng, b, people):
    """Features whose 1x1 head output is people's heatmaps and one tag per person.

    Channels 0-16: the people's Gaussian heatmaps (128 x 128, σ 2), channel 17: their
    tags, painted around their joints; both with a little noise, as a network's maps
    (no exactly equal values, see random_maps). The flipped features are the flipped image's
    (left and right joints swapped), as a backbone would give.
    """
    kp = np.zeros((b, people, 17, 3))
    kp[..., 0] = rng.uniform(4, 124, (b, people, 17))
    kp[..., 1] = rng.uniform(4, 124, (b, people, 17))
    kp[..., 2] = rng.random((b, people, 17)) < 0.85
    feats = np.zeros((b, 32, 128, 128), np.float32)
    feats[:, :17] = ae.render_heatmaps(kp, (128, 128), sigma=2.0)
    # a little noise, as a network's maps have: no exactly equal values (see random_maps)
    feats[:, :18] += rng.random((b, 18, 128, 128)).astype(np.float32) * 0.01
    for bi in range(b):
        for n in range(people):
            for j in np.nonzero(kp[bi, n, :, 2])[0]:
                x, y = int(kp[bi, n, j, 0]), int(kp[bi, n, j, 1])
                patch = feats[bi, 17, y - 3 : y + 4, x - 3 : x + 4]
                patch[:] = 2.0 * n + rng.normal(size=patch.shape) * 0.05
    flipped = feats[..., ::-1].copy()
    flipped[:, :17] = flipped[:, FLIP]
    return torch.from_numpy(feats), torch.from_numpy(flipped)


def set_identity_layer(head):
    """Final 1x1 layer: heatmap k = feature k, tag of every joint = feature 17."""
    layer = head.final_layer
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        for k in range(17):
            layer.weight[k, k] = 1.0
            layer.weight[17 + k, 17] = 1.0


def predictions(head, feats, samples, test_cfg):
    with torch.no_grad():
        preds = head.predict(feats, samples, test_cfg=test_cfg)
    return (
        [p.keypoints for p in preds],
        [p.keypoint_scores for p in preds],
        [p.bbox_scores for p in preds],
    )


@pytest.mark.slow
def test_head_predict_identical_on_synthetic_features(models, mm, rng):
    theirs, ours, test_cfg = build_heads(mm)
    for head in (theirs, ours):
        set_identity_layer(head)
    orig, flipped = synthetic_features(rng, 2, people=8)
    feats = [(orig,), (flipped,)]  # flip test: original and flipped features
    a = predictions(ours, feats, data_samples(2), test_cfg)
    b = predictions(theirs, feats, data_samples(2), test_cfg)
    assert_same_people(a, b)
    assert all(len(s) >= 8 for s in a[2])  # every synthetic person found


@pytest.mark.slow
def test_head_predict_identical_on_random_features(models, mm, rng):
    theirs, ours, test_cfg = build_heads(mm)
    with torch.no_grad():
        weight = torch.from_numpy(rng.normal(size=ours.final_layer.weight.shape) * 0.08)
        for head in (theirs, ours):
            head.final_layer.weight.copy_(weight)
    # the resize to 512 x 512 repeats the outermost feature pixels (rows and columns 0-1
    # and 510-511 hold equal values), and mmpose's torch.topk orders such ties arbitrarily:
    # zero features at the frame keep its peaks (and its ties) out of the candidates
    feats = []
    for _ in range(2):
        f = rng.normal(size=(2, 32, 128, 128)).astype(np.float32)
        f[..., [0, -1], :] = 0
        f[..., [0, -1]] = 0
        feats.append((torch.from_numpy(f),))
    a = predictions(ours, feats, data_samples(2), test_cfg)
    b = predictions(theirs, feats, data_samples(2), test_cfg)
    assert_same_people(a, b)
    assert all(len(s) > 0 for s in a[2])


@pytest.mark.parametrize(
    ("people", "keypoint_loss"),
    [
        # the shipped KeypointMSELoss(use_target_weight=True): mmpose 1.3.2's head hands it
        # (sum of N_i, K) weights, which it accepts only when sum of N_i = B
        ([0, 1, 2], None),
        ([0, 3, 5], dict(type="BottomupHeatmapMSELoss")),
    ],
)
def test_head_loss_equal_losses_and_gradients(models, mm, rng, people, keypoint_loss):
    from mmengine.structures import InstanceData, PixelData
    from mmpose.codecs import AssociativeEmbedding

    theirs, ours, _ = build_heads(mm, keypoint_loss)
    with torch.no_grad():
        for head in (theirs, ours):
            head.final_layer.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    args = dict(input_size=(512, 512), heatmap_size=(128, 128), sigma=2)
    encoders = {
        id(theirs): AssociativeEmbedding(**args),
        id(ours): mm.FastAssociativeEmbedding(**args),
    }
    keypoints = [rng.uniform(-20, 530, (n, 17, 2)).astype(np.float32) for n in people]
    visible = [(rng.random((n, 17)) < 0.7).astype(np.float32) for n in people]
    feats = torch.from_numpy(rng.normal(size=(3, 32, 128, 128)).astype(np.float32))
    results = []
    for head in (theirs, ours):
        samples = data_samples(3)
        for s, kp, vis in zip(samples, keypoints, visible, strict=True):
            enc = encoders[id(head)].encode(kp, vis)
            s.gt_fields = PixelData(
                heatmaps=torch.from_numpy(enc["heatmaps"]),
                heatmap_mask=torch.ones(1, 128, 128),
            )
            s.gt_instance_labels = InstanceData(
                keypoint_weights=torch.from_numpy(enc["keypoint_weights"]),
                keypoint_indices=torch.from_numpy(enc["keypoint_indices"]),
            )
        x = feats.clone().requires_grad_(True)
        head.zero_grad()
        losses = head.loss((x,), samples)
        sum(losses.values()).backward()
        grads = [p.grad.clone() for p in head.parameters()]
        results.append((losses, x.grad.clone(), grads))
    (l_a, gx_a, gp_a), (l_b, gx_b, gp_b) = results
    assert l_a.keys() == l_b.keys() == {"loss_kpt", "loss_pull", "loss_push"}
    for key in l_a:
        torch.testing.assert_close(l_b[key], l_a[key], rtol=1e-5, atol=1e-9, msg=key)
    assert float(l_a["loss_push"]) > 0 and float(l_a["loss_pull"]) > 0
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-4, atol=1e-9)
    for a, b in zip(gp_a, gp_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-9)


def test_example_config_is_the_shipped_one_with_the_stated_changes(mm):
    from mmengine.config import Config

    shipped = shipped_config().to_dict()
    example = Config.fromfile(str(EXAMPLE)).to_dict()
    # the five changes its header states, undone
    assert example.pop("custom_imports") == dict(
        imports=["associative_embedding.mmpose"], allow_failed_imports=False
    )
    assert example["train_dataloader"]["dataset"]["pipeline"] == example["train_pipeline"]
    head = example["model"]["head"]
    for codec in (example["codec"], head["decoder"], example["train_pipeline"][3]["encoder"]):
        assert codec.pop("type") == "FastAssociativeEmbedding"
        assert codec.pop("grouping") == "mmpose-1.x"
        codec["type"] = "AssociativeEmbedding"
    assert head["tag_loss"]["type"] == "FastAssociativeEmbeddingLoss"
    head["tag_loss"]["type"] = "AssociativeEmbeddingLoss"
    assert head["keypoint_loss"] == dict(type="BottomupHeatmapMSELoss")
    head["keypoint_loss"] = dict(type="KeypointMSELoss", use_target_weight=True)
    assert [t["type"] for t in example["train_pipeline"]] == [
        "LoadImage",
        "BottomupRandomAffine",
        "RandomFlip",
        "GenerateTarget",
        "BottomupGetHeatmapMask",
        "PackPoseInputs",
    ]
    example["train_pipeline"] = example["train_dataloader"]["dataset"]["pipeline"] = []
    assert shipped["train_pipeline"] == []
    assert sorted(example) == sorted(shipped)
    for key in shipped:
        assert example[key] == shipped[key], key


# --- training through mmengine's Runner -------------------------------------------------------
COCO_NAMES = list(ae.COCO_KEYPOINTS.keypoints)


def stick_people(rng, n_people, size):
    """COCO-order keypoints (N, 17, 3) of upright stick figures inside a size x size image."""
    # offsets of the 17 joints from the hip centre, in units of the person's height
    template = np.array(
        [
            [0.0, -0.85], [-0.03, -0.88], [0.03, -0.88], [-0.07, -0.86], [0.07, -0.86],
            [-0.15, -0.65], [0.15, -0.65], [-0.2, -0.4], [0.2, -0.4], [-0.22, -0.15],
            [0.22, -0.15], [-0.1, 0.0], [0.1, 0.0], [-0.11, 0.3], [0.11, 0.3],
            [-0.12, 0.6], [0.12, 0.6],
        ]
    )  # fmt: skip
    people = []
    for _ in range(n_people):
        height = rng.uniform(0.35, 0.55) * size
        cx = rng.uniform(0.25, 0.75) * size
        cy = rng.uniform(0.45, 0.55) * size
        xy = template * height + [cx, cy]
        people.append(np.concatenate([xy, np.full((17, 1), 2.0)], 1))
    return np.array(people)


def draw(image, people):
    import cv2

    edges = [(e[0], e[1]) for e in ae.COCO_KEYPOINTS.edges]
    for n, person in enumerate(people):
        colour = (60 + 90 * n % 255, 200 - 70 * n % 200, 120)
        for a, b in edges:
            pa = tuple(int(v) for v in person[a, :2])
            pb = tuple(int(v) for v in person[b, :2])
            cv2.line(image, pa, pb, colour, 2)
        for x, y, _ in person:
            cv2.circle(image, (int(x), int(y)), 2, (255, 255, 255), -1)
    return image


def write_coco(root, split, n_images, rng, size=128):
    import cv2

    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for i in range(n_images):
        people = stick_people(rng, int(rng.integers(1, 3)), size)
        image = (rng.random((size, size, 3)) * 60).astype(np.uint8)
        cv2.imwrite(str(root / split / f"{i:04d}.png"), draw(image, people))
        images.append(dict(id=i + 1, file_name=f"{i:04d}.png", width=size, height=size))
        for person in people:
            x0, y0 = person[:, :2].min(0) - 4
            x1, y1 = person[:, :2].max(0) + 4
            w, h = x1 - x0, y1 - y0
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i + 1,
                    category_id=1,
                    iscrowd=0,
                    keypoints=[float(v) for v in person.reshape(-1)],
                    num_keypoints=17,
                    bbox=[float(x0), float(y0), float(w), float(h)],
                    area=float(w * h),
                    segmentation=[
                        [
                            float(x0),
                            float(y0),
                            float(x1),
                            float(y0),
                            float(x1),
                            float(y1),
                            float(x0),
                            float(y1),
                        ]
                    ],
                )
            )
    category = dict(
        id=1,
        name="person",
        supercategory="person",
        keypoints=COCO_NAMES,
        skeleton=[[a + 1, b + 1] for a, b in ae.COCO_KEYPOINTS.edges],
    )
    ann = dict(images=images, annotations=annotations, categories=[category])
    path = root / "annotations" / f"{split}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(ann))
    return path


@pytest.mark.slow
# mmpose's BottomupGetHeatmapMask makes (H, W) masks that PixelData reshapes with a warning
@pytest.mark.filterwarnings("ignore:The shape of value will convert:UserWarning")
def test_example_config_trains_and_evaluates_through_the_runner(models, mm, tmp_path):
    need("xtcocotools", "mmpose's COCO data set and CocoMetric need xtcocotools")
    from mmengine.config import Config
    from mmengine.runner import Runner

    rng = np.random.default_rng(0)
    root = tmp_path / "coco"
    write_coco(root, "train", 8, rng)
    write_coco(root, "val", 4, rng)
    cfg = Config.fromfile(str(EXAMPLE))
    configs = Path(importlib.import_module("mmpose").__file__).parent / ".mim" / "configs"
    assert cfg.model.head.decoder.type == cfg.train_pipeline[3]["encoder"]["type"]
    assert cfg.model.head.tag_loss.type == "FastAssociativeEmbeddingLoss"
    # tiny: 128 px input, 32 px heatmaps, a small HRNet without pretrained weights
    codec = dict(cfg.codec, input_size=(128, 128), heatmap_size=(32, 32), sigma=1)
    tiny_hrnet = dict(
        type="HRNet",
        in_channels=3,
        extra=dict(
            stage1=dict(
                num_modules=1,
                num_branches=1,
                block="BOTTLENECK",
                num_blocks=(1,),
                num_channels=(16,),
            ),
            stage2=dict(
                num_modules=1,
                num_branches=2,
                block="BASIC",
                num_blocks=(1, 1),
                num_channels=(16, 32),
            ),
            stage3=dict(
                num_modules=1,
                num_branches=3,
                block="BASIC",
                num_blocks=(1, 1, 1),
                num_channels=(16, 32, 64),
            ),
            stage4=dict(
                num_modules=1,
                num_branches=4,
                block="BASIC",
                num_blocks=(1, 1, 1, 1),
                num_channels=(16, 32, 64, 128),
            ),
        ),
    )
    cfg.model.backbone = tiny_hrnet
    cfg.model.head.in_channels = 16
    cfg.model.head.decoder = dict(codec, heatmap_size=codec["input_size"])
    cfg.model.head.tag_loss.loss_weight = 0.1
    pipeline = [dict(t) for t in cfg.train_pipeline]
    pipeline[1]["input_size"] = codec["input_size"]
    pipeline[3]["encoder"] = codec
    val_pipeline = [dict(t) for t in cfg.val_pipeline]
    val_pipeline[1]["input_size"] = codec["input_size"]
    for loader, split, pipe in (
        (cfg.train_dataloader, "train", pipeline),
        (cfg.val_dataloader, "val", val_pipeline),
    ):
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset.update(
            data_root=str(root),
            ann_file=f"annotations/{split}.json",
            data_prefix=dict(img=f"{split}/"),
            pipeline=pipe,
            # mmpose's COCO metainfo by its installed path (its relative default warns)
            metainfo=dict(from_file=str(configs / "_base_" / "datasets" / "coco.py")),
        )
    cfg.val_dataloader.batch_size = 1
    cfg.val_evaluator.ann_file = str(root / "annotations" / "val.json")
    # The runner gets mmengine's hooks, visualizer, optimizer wrapper and loops (and the
    # model, data loaders and metric built from the config) as objects: looked up in mmpose's scope,
    # each of them first imports mmpose.engine or mmpose.visualization, which import
    # torchvision, and PyPI's torchvision does not load with a CPU-only build of torch (so
    # .ci/install_mmpose.sh removes it). The model, data sets, transforms, codec, losses
    # and metric are the config's.
    from mmengine.evaluator import Evaluator
    from mmengine.hooks import (
        CheckpointHook,
        IterTimerHook,
        LoggerHook,
        ParamSchedulerHook,
        RuntimeInfoHook,
    )
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer
    from mmpose.registry import METRICS, MODELS

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        train_loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        val_loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
        evaluator = Evaluator(METRICS.build(cfg.val_evaluator))
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / "work"),
        train_dataloader=train_loader,
        val_dataloader=val_loader,
        val_evaluator=evaluator,
        train_cfg=dict(type="IterBasedTrainLoop", _scope_="mmengine", max_iters=6, val_interval=99),
        val_cfg=dict(type="ValLoop", _scope_="mmengine"),
        optim_wrapper=OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3)),
        default_hooks=dict(
            runtime_info=RuntimeInfoHook(),
            timer=IterTimerHook(),
            sampler_seed=None,
            logger=LoggerHook(interval=1),
            param_scheduler=ParamSchedulerHook(),
            checkpoint=CheckpointHook(interval=1000, by_epoch=False),
        ),
        custom_hooks=[],
        visualizer=Visualizer(name=f"ae_mmpose_{id(model)}"),
        log_processor=dict(by_epoch=False),
        default_scope=cfg.default_scope,
        randomness=dict(seed=0),
    )
    model = runner.train()
    assert isinstance(model.head.decoder, mm.FastAssociativeEmbedding)
    logs = runner.message_hub.log_scalars
    for key in ("train/loss_kpt", "train/loss_pull", "train/loss_push"):
        values = logs[key].data[0]
        assert len(values) == 6 and np.isfinite(values).all(), key
    metrics = runner.val_loop.run()
    assert "coco/AP" in metrics and 0.0 <= metrics["coco/AP"] <= 1.0
    print(f"AP after 6 iterations: {metrics['coco/AP']:.4f}")
