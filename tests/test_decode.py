"""ae.decode against the literal reference parser, round trips, inputs, errors, conversions."""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import associative_embedding as ae
from associative_embedding._decode import options as decode_options
from associative_embedding._decode import peaks as _peaks
from associative_embedding._decode import torch_path as _torch_path
from associative_embedding._decode.peaks import Candidates
from associative_embedding.decoding import DecodeConfig, Poses, warmup
from associative_embedding.decoding import decode as _decode
from associative_embedding.skeletons import COCO_KEYPOINTS
from tests.reference_parser import reference_parse

HIGHERHRNET = DecodeConfig.preset("higherhrnet")


def decode(heatmaps, tags, config=None, **options):
    """``ae.decode`` with HigherHRNet's settings unless given a config: this module checks
    parity with the references, whose settings were the defaults before 0.1."""
    return _decode(heatmaps, tags, HIGHERHRNET if config is None else config, **options)


@pytest.fixture(scope="session", autouse=True)
def _compiled():
    warmup(["float32", "float64"])  # the tests decode both


def random_scene(rng, k, h, w, d, n_people, dtype=np.float32, coarse=False):
    """Noise below threshold plus one peak per (person, joint), tags near the person's."""
    heat = rng.random((k, h, w)) * 0.08
    tags = rng.standard_normal((k, d, h, w)) * 3
    person_tags = rng.standard_normal((n_people, d)) * 2
    for p in range(n_people):
        for j in range(k):
            if rng.random() < 0.2:
                continue
            y, x = rng.integers(0, h), rng.integers(0, w)
            heat[j, y, x] = rng.random() * 0.9 + 0.1
            tags[j, :, y, x] = person_tags[p] + rng.standard_normal(d) * 0.4
    if coarse:  # equal values: plateaus, tied peaks, tied costs in the assignment
        heat = np.round(heat * 8) / 8
        tags = np.round(tags * 4) / 4
    return heat.astype(dtype), tags.astype(dtype)


def assert_same(poses, ref):
    keypoints, scores, tags = ref
    for got, want in ((poses.keypoints, keypoints), (poses.scores, scores), (poses.tags, tags)):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def check_batch(rng, options, *, batch=3, k=None, size=None, d=None, people=None, dtype=None):
    k = int(rng.integers(1, 18)) if k is None else k
    h, w = (int(rng.integers(2, 33)), int(rng.integers(2, 33))) if size is None else size
    d = int(rng.choice([1, 1, 2, 3])) if d is None else d
    people = int(rng.integers(0, 14)) if people is None else people
    dtype = [np.float32, np.float64][int(rng.integers(2))] if dtype is None else dtype
    coarse = bool(rng.integers(2))
    scenes = [random_scene(rng, k, h, w, d, people, dtype, coarse) for _ in range(batch)]
    heat = np.stack([s[0] for s in scenes])
    tags = np.stack([s[1] for s in scenes])
    results = decode(heat, tags, num_threads=2, **options)
    assert len(results) == batch
    for (hm, tg), poses in zip(scenes, results, strict=True):
        assert_same(poses, reference_parse(hm, tg, **options))


# --- parity with the reference parser ------------------------------------------------------
OPTION_VALUES = {
    "max_people": [1, 2, 3, 5, 30],
    "detection_threshold": [0.0, 0.1, 0.3],
    "tag_threshold": [0.5, 1.0, 2.0],
    "nms_kernel": [1, 3, 5],
    "matching": ["hungarian", "greedy"],
    "use_detection_value": [True, False],
    "tag_distance": ["l2", "rms"],
    "adjust": [True, False],
    "adjust_rule": ["reference", "mmpose"],
    "center_shift": [0.5, 0.0, 0.1],
    "refine": [True, False],
    "refine_mode": ["higherhrnet", "pose-ae-train", "mmpose"],
    "match_people": ["first", "all"],
    "ignore_too_much": [False, True],
    "max_instances": [None, 1, 4],
    "max_instances_mode": ["final", "matching"],
}


@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    options=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in OPTION_VALUES.items()}),
)
def test_equals_reference_parser_for_random_options(seed, options):
    check_batch(np.random.default_rng(seed), options, batch=4)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["higherhrnet", "pose-ae-train", "mmpose-0.x", "mmpose-1.x"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_reference_parser_for_each_preset(preset, dtype, rng):
    options = {
        f: getattr(DecodeConfig.preset(preset), f) for f in DecodeConfig.__dataclass_fields__
    }
    for _ in range(25):
        check_batch(rng, options, batch=4, dtype=dtype)


@pytest.mark.slow
def test_equals_reference_parser_in_crowds(rng):
    # more people than the caps: "first 30" truncation, ignore_too_much, max_instances
    for options in (
        {"max_people": 4},
        {"max_people": 4, "ignore_too_much": True},
        {"max_people": 4, "match_people": "all", "max_instances": 6},
        {
            "max_people": 4,
            "match_people": "all",
            "max_instances": 6,
            "max_instances_mode": "matching",
        },
        {"max_people": 3, "matching": "greedy"},
    ):
        for _ in range(15):
            check_batch(rng, options, batch=2, people=int(rng.integers(8, 25)))


@pytest.mark.slow
@pytest.mark.parametrize("block", [1, 2, 5])
def test_equals_reference_parser_with_small_refine_tiles(block, rng, monkeypatch):
    # tiny tiles make the bounded search skip and order many tiles
    monkeypatch.setattr(decode_options, "TILE", block)
    for mode in ("higherhrnet", "pose-ae-train", "mmpose"):
        for _ in range(10):
            check_batch(rng, {"refine_mode": mode}, batch=3, size=(24, 31))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["higherhrnet", "mmpose-1.x"])
def test_equals_reference_parser_on_maps_of_many_tiles(preset, rng):
    # 16 x 16 tiles inside the map (not touching its edges) take the peak search's
    # unrolled test, and the missing-joint search reuses the peak search's tile maxima
    options = {
        f: getattr(DecodeConfig.preset(preset), f) for f in DecodeConfig.__dataclass_fields__
    }
    for _ in range(4):
        size = (int(rng.integers(33, 65)), int(rng.integers(33, 65)))
        check_batch(rng, options, batch=2, size=size, people=int(rng.integers(5, 20)))


def test_equals_reference_parser_with_many_tag_dimensions(rng):
    # D >= 8 takes numpy's 8-way pairwise sums over the tag dimensions
    for _ in range(6):
        check_batch(rng, {}, batch=2, d=9, size=(12, 14))


# --- round trips ----------------------------------------------------------------------------
COCO_SIGMAS = np.array(COCO_KEYPOINTS.sigmas)  # pycocotools' kpt_oks_sigmas


def render(people, person_tags, h, w, sigma=1.5, amplitude=None):
    """Gaussian heatmaps at integer joint positions; each person's tag in a disc at its joints."""
    n, k, _ = people.shape
    heat = np.zeros((k, h, w))
    tags = np.zeros((k, person_tags.shape[1], h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for p in range(n):
        for j in range(k):
            x, y = people[p, j]
            amp = 1.0 if amplitude is None else amplitude[p, j]
            g = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
            heat[j] = np.maximum(heat[j], g)
            near = (xx - x) ** 2 + (yy - y) ** 2 <= 9
            tags[j][:, near] = person_tags[p][:, None]
    return heat.astype(np.float32), tags.astype(np.float32)


def random_people(rng, n, k, h, w):
    """n people whose joints are at distinct pixels at least 8 px apart per joint type."""
    people = np.zeros((n, k, 2), np.int64)
    for j in range(k):
        placed = []
        while len(placed) < n:
            x, y = int(rng.integers(2, w - 2)), int(rng.integers(2, h - 2))
            if all((x - a) ** 2 + (y - b) ** 2 >= 64 for a, b in placed):
                placed.append((x, y))
        people[:, j] = placed
    return people


def coco_ap(gt_people, found, scale):
    """pycocotools keypoint AP of decoded poses against the known people (image pixels)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    k = gt_people[0].shape[1]
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    dets = []
    for i, (people, poses) in enumerate(zip(gt_people, found, strict=True)):
        gt["images"].append({"id": i + 1, "width": 1000, "height": 1000})
        for p in people:
            xy = (p + 0.5) * scale  # pixel centres in image pixels
            kps = np.concatenate([xy, np.full((k, 1), 2.0)], axis=1).ravel().tolist()
            x0, y0 = xy.min(axis=0)
            x1, y1 = xy.max(axis=0)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "keypoints": kps,
                    "num_keypoints": k,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0,
                }
            )
        image = poses.rescale(scale)
        for kp, score in zip(image.keypoints, image.scores, strict=True):
            kp = kp.copy()
            kp[:, 2] = 1.0
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": 1,
                    "keypoints": kp.ravel().tolist(),
                    "score": float(score),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        result = coco.loadRes(dets)
        ev = COCOeval(coco, result, "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS[:k]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_round_trip_returns_the_rendered_people(rng):
    h, w, k = 64, 80, 17
    batch_people, heats, tags = [], [], []
    for _ in range(3):
        n = int(rng.integers(1, 7))
        people = random_people(rng, n, k, h, w)
        person_tags = (rng.permutation(n)[:, None] * 2.0).repeat(2, axis=1)
        hm, tg = render(people, person_tags, h, w)
        batch_people.append(people)
        heats.append(hm)
        tags.append(tg)
    heat, tag = np.stack(heats), np.stack(tags)
    # integer pixel coordinates: exactly the rendered joints
    exact = decode(heat, tag, adjust=False, center_shift=0.0, refine=False)
    for people, poses in zip(batch_people, exact, strict=True):
        assert len(poses) == len(people)
        got = {tuple(map(tuple, kp[:, :2].astype(int))) for kp in poses.keypoints}
        assert got == {tuple(map(tuple, p)) for p in people}
        np.testing.assert_array_equal(poses.keypoints[:, :, 2], 1.0)
    # reference settings: OKS AP 1.0 through pycocotools
    found = decode(heat, tag)
    assert coco_ap(batch_people, found, scale=4.0) == 1.0


def test_refine_recovers_a_deleted_joint(rng):
    h, w, k = 48, 48, 5
    people = random_people(rng, 3, k, h, w)
    person_tags = np.array([[0.0], [3.0], [6.0]])
    amplitude = np.ones((3, k))
    amplitude[1, 2] = 0.06  # below the detection threshold, still the best pixel for its tag
    heat, tags = render(people, person_tags, h, w, amplitude=amplitude)
    (without,) = decode(heat[None], tags[None], refine=False)
    (poses,) = decode(heat[None], tags[None])
    person = int(np.argmin(np.abs(poses.tags[:, 0] - 3.0)))
    missing = without.keypoints[person, 2]
    assert np.isnan(missing[:2]).all()
    assert missing[2] == 0
    x, y = people[1, 2]
    recovered = poses.keypoints[person, 2]
    assert recovered[2] == pytest.approx(0.06)
    assert abs(recovered[0] - (x + 0.5)) <= 0.25
    assert abs(recovered[1] - (y + 0.5)) <= 0.25
    # the person score is the mean before recovery
    assert poses.scores[person] == without.scores[person]


# --- inputs ---------------------------------------------------------------------------------
def test_empty_results_have_the_documented_shapes():
    heat = np.zeros((2, 4, 6, 6), np.float32)
    tags = np.zeros((2, 4, 3, 6, 6), np.float32)
    for poses in decode(heat, tags):
        assert poses.keypoints.shape == (0, 4, 3)
        assert poses.scores.shape == (0,)
        assert poses.tags.shape == (0, 3)
        assert len(poses) == 0
    assert decode(np.zeros((0, 4, 6, 6), np.float32), np.zeros((0, 4, 6, 6), np.float32)) == []


def test_missing_joints_are_nan_with_score_zero():
    heat = np.zeros((1, 3, 8, 8), np.float32)
    heat[0, 0, 2, 3] = 0.9
    (poses,) = decode(heat, np.zeros((1, 3, 8, 8), np.float32), refine=False)
    kp = poses.keypoints[0]
    assert kp[0].tolist() == [3.25, 2.25, pytest.approx(0.9)]  # ties move by -0.25
    assert np.isnan(kp[1:, :2]).all()
    assert kp[1:, 2].tolist() == [0.0, 0.0]
    assert poses.scores[0] == pytest.approx(0.3)


def test_more_people_than_the_cap_is_no_error(rng):
    # 40 peaks on one joint type with distinct tags: 30 candidates (top-k), 30 people
    k, h, w = 2, 40, 40
    heat = np.zeros((1, k, h, w), np.float32)
    tags = np.zeros((1, k, h, w), np.float32)
    for i in range(40):
        y, x = divmod(i, 8)
        heat[0, :, 5 * y + 1, 5 * x + 1] = 0.5 + i / 100
        tags[0, :, 5 * y + 1, 5 * x + 1] = 3.0 * i
    (poses,) = decode(heat, tags, refine=False)
    assert len(poses) == 30  # top-k 30 per joint, each pair matched
    (poses,) = decode(heat, tags, refine=False, max_people=40)
    assert len(poses) == 40
    tags[0, 1] += 100.0  # nothing matches: every candidate of joint 1 starts a person
    (poses,) = decode(heat, tags, refine=False, max_people=40)
    assert len(poses) == 80
    (poses,) = decode(heat, tags, refine=False, max_people=40, max_instances=5)
    assert len(poses) == 5


def test_mmpose_preset_matches_against_all_people_and_cuts_at_the_end():
    # mmpose 1.3.2 (PR #2752): a joint can go to a person beyond max_instances, who is
    # dropped at the end; mmpose 1.0/1.1 matched only against the first max_instances
    heat = np.zeros((1, 2, 12, 12), np.float32)
    tags = np.zeros((1, 2, 12, 12), np.float32)
    heat[0, 0, 2, 2], tags[0, 0, 2, 2] = 0.9, 0.0  # person A
    heat[0, 0, 8, 8], tags[0, 0, 8, 8] = 0.8, 0.6  # person B
    heat[0, 1, 5, 5], tags[0, 1, 5, 5] = 0.9, 0.55  # closer to B (0.05) than A (0.55)
    opts = dict(refine=False, joint_order=(0, 1))
    (final,) = decode(heat, tags, DecodeConfig.preset("mmpose-1.x", max_instances=1, **opts))
    assert len(final) == 1 and np.isnan(final.keypoints[0, 1, 0])  # B took it, B was cut
    (old,) = decode(
        heat,
        tags,
        DecodeConfig.preset("mmpose-1.x", max_instances=1, max_instances_mode="matching", **opts),
    )
    assert len(old) == 1 and old.keypoints[0, 1, 2] == np.float32(0.9)  # only A could take it


def test_people_are_sorted_by_score(rng):
    heat, tags = random_scene(rng, 6, 30, 30, 1, 12)
    (poses,) = decode(heat[None], tags[None])
    assert (np.diff(poses.scores) <= 0).all()


def test_threads_do_not_change_results(rng):
    scenes = [random_scene(rng, 5, 20, 24, 2, 8) for _ in range(7)]
    heat = np.stack([s[0] for s in scenes])
    tags = np.stack([s[1] for s in scenes])
    one = decode(heat, tags, num_threads=1)
    many = decode(heat, tags, num_threads=3)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.tags, b.tags)


def test_layouts_dtypes_and_memory_orders(rng):
    heat, tags = random_scene(rng, 4, 16, 18, 1, 5)
    base = decode(heat[None], tags[None])[0]
    # (B, K, H, W) tags are D = 1
    same = decode(heat[None], tags[None, :, 0])[0]
    np.testing.assert_array_equal(base.keypoints, same.keypoints)
    assert same.tags.shape[1] == 1
    # non-contiguous and read-only views
    hv = np.asfortranarray(heat[None])
    tv = tags[None].copy()
    tv.setflags(write=False)
    view = decode(hv, tv)[0]
    np.testing.assert_array_equal(base.keypoints, view.keypoints)
    # float16 widens losslessly to float32; any float64 input gives float64 results
    h16 = heat.astype(np.float16)
    r16 = decode(h16[None], tags[None].astype(np.float16))[0]
    r32 = decode(h16.astype(np.float32)[None], tags[None].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(r16.keypoints, r32[0].keypoints)
    mixed = decode(heat[None], tags[None].astype(np.float64))[0]
    assert mixed.keypoints.dtype == mixed.tags.dtype == mixed.scores.dtype == np.float64


def test_repeated_numpy_calls_equal_the_general_path(rng):
    # contiguous writeable numpy calls take a cached plan; a read-only copy of the same maps
    # takes the general path (it converts them), so both must give the same people
    heat, tags = random_scene(rng, 5, 20, 22, 2, 6)
    hb, tb = heat[None], tags[None]
    ro_h, ro_t = hb.copy(), tb.copy()
    ro_h.setflags(write=False)
    ro_t.setflags(write=False)
    configs = [None, DecodeConfig.preset("mmpose-1.x"), DecodeConfig(refine=False)]
    for _ in range(2):  # the second round hits the cache
        for config in configs:
            for threads in (None, 1, 2):
                fast = decode(hb, tb, config, num_threads=threads)[0]
                slow = decode(ro_h, ro_t, config, num_threads=threads)[0]
                for a, b in ((fast.keypoints, slow.keypoints), (fast.tags, slow.tags)):
                    np.testing.assert_array_equal(a, b)
    # maps in the other byte order are converted by the general path
    swapped = decode(hb.astype(hb.dtype.newbyteorder()), tb.astype(tb.dtype.newbyteorder()))[0]
    np.testing.assert_array_equal(swapped.keypoints, decode(hb, tb)[0].keypoints)
    # a plan is per config: another config with equal shapes gives its own people
    assert len(decode(hb, tb, max_instances=1)[0]) == 1
    assert len(decode(hb, tb, DecodeConfig(max_instances=1))[0]) == 1
    assert len(decode(hb, tb)[0]) > 1
    # errors are the general path's, on the first call and after a cached one
    for _ in range(2):
        with pytest.raises(ValueError, match="num_threads"):
            decode(hb, tb, num_threads=0)
        with pytest.raises(TypeError, match="config must be a DecodeConfig"):
            decode(hb, tb, {"refine": False})
        bad = tb.copy()
        bad[0, 3, 1, 4, 5] = np.nan
        with pytest.raises(ValueError, match="tags contains 1 NaN"):
            decode(hb, bad)
    assert decode(hb[:0], tb[:0]) == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_in_the_work_dtype_selects_as_float64(dtype, rng):
    thresholds = [0.1, 0.3, -0.2, 1 / 3, 0.0, 1e-40, 1e300, -1e300, 2.0**-149 * 0.75]
    with np.errstate(over="ignore"):  # 1e300 is an infinity in float32
        at = [dtype(t) for t in thresholds]
    near = [np.nextafter(a, dtype(d)) for a in at for d in (-np.inf, np.inf)]
    values = np.concatenate([rng.standard_normal(2000), at, near, [np.inf, -np.inf]]).astype(dtype)
    for t in thresholds:
        got = decode_options.threshold_for(t, np.dtype(dtype))
        assert got.dtype == dtype
        np.testing.assert_array_equal(values > got, values.astype(np.float64) > np.float64(t))


def test_a_peak_at_the_float32_of_the_threshold_is_detected():
    # float32(0.1) is just above 0.1: the references compare the values in float64 rows,
    # so it is a detection; the float32 below it is not (numpy and torch paths alike)
    heat = np.zeros((1, 2, 7, 8), np.float32)
    heat[0, 0, 2, 3] = np.float32(0.1)
    heat[0, 1, 4, 5] = np.nextafter(np.float32(0.1), np.float32(0))
    tags = np.zeros_like(heat)
    want = reference_parse(heat[0], tags[0, :, None], refine=False)
    for h, t in ((heat, tags), (torch.from_numpy(heat), torch.from_numpy(tags))):
        (poses,) = decode(h, t, refine=False)
        assert len(poses) == 1
        assert not np.isnan(poses.keypoints[0, 0, 0]) and np.isnan(poses.keypoints[0, 1, 0])
        np.testing.assert_array_equal(poses.keypoints, want[0])


def test_float64_tags_are_not_rounded_to_float32():
    # two candidates whose distances to a person differ only beyond float32 precision
    heat = np.zeros((1, 2, 8, 8))
    tags = np.zeros((1, 2, 8, 8))
    heat[0, 0, 1, 1] = 0.9
    heat[0, 1, 5, 5] = 0.5
    tags[0, 1, 5, 5] = 0.9999999999  # 1.0 in float32: >= the threshold
    (poses,) = decode(heat, tags, refine=False, use_detection_value=False)
    assert len(poses) == 1  # float64: distance < 1, the joint joins the person
    (poses,) = decode(heat.astype(np.float32), tags.astype(np.float32), refine=False)
    assert len(poses) == 2
    assert decode(heat, tags)[0].tags.dtype == np.float64


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str
)
def test_cpu_tensors(dtype, rng):
    heat, tags = random_scene(rng, 5, 20, 20, 2, 6)
    ht = torch.from_numpy(heat[None]).to(dtype).requires_grad_(True)
    tt = torch.from_numpy(tags[None]).to(dtype)
    got = decode(ht, tt)[0]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    want = decode(ht.detach().to(work).numpy(), tt.to(work).numpy())[0]
    assert got.keypoints.dtype == want.keypoints.dtype
    assert got.keypoints.dtype == (np.float64 if dtype == torch.float64 else np.float32)
    np.testing.assert_array_equal(got.keypoints, want.keypoints)


@pytest.mark.slow
def test_torch_candidates_equal_the_numba_candidates(rng):
    for trial in range(30):
        k, h, w, d = 3, int(rng.integers(1, 25)), int(rng.integers(1, 25)), 2
        heat = rng.random((2, k, h, w))
        if trial % 2:
            heat = np.round(heat * 4) / 4  # plateaus and tied values
        heat = heat.astype(np.float32)
        tags = rng.standard_normal((2, k, d, h, w)).astype(np.float32)
        m = min(int(rng.integers(1, 10)), h * w)
        kernel = int(rng.choice([1, 3, 5]))
        vals, idx, cnt, ctag, nb = (
            t.numpy()
            for t in _torch_path.torch_candidates(
                torch.from_numpy(heat), torch.from_numpy(tags), m, 0.1, kernel
            )
        )
        for b in range(2):
            v2 = np.empty((k, m), np.float32)
            i2 = np.empty((k, m), np.int64)
            c2 = np.empty(k, np.int64)
            t2 = np.zeros((k, m, d), np.float32)
            n2 = np.zeros((k, m, 4), np.float32)
            cand = Candidates(v2, i2, c2, t2, n2)
            _peaks.find_candidates(heat[b], 0.1, kernel, cand, np.empty((0, 1), np.float32))
            _peaks.gather_candidates(heat[b], tags[b], cand)
            np.testing.assert_array_equal(cnt[b], c2)
            for j in range(k):
                n = c2[j]
                np.testing.assert_array_equal(vals[b, j, :n], v2[j, :n])
                np.testing.assert_array_equal(idx[b, j, :n], i2[j, :n])
                np.testing.assert_array_equal(ctag[b, j, :n], t2[j, :n])
                np.testing.assert_array_equal(nb[b, j, :n], n2[j, :n])


@pytest.mark.parametrize("refine", [True, False])
def test_tensor_path_equals_numpy_path(refine, rng):
    # the CUDA code path (candidates with torch, maps copied per needed joint), run on CPU
    for _ in range(8):
        k, d = int(rng.integers(1, 18)), int(rng.choice([1, 2]))
        scenes = [random_scene(rng, k, 20, 23, d, int(rng.integers(0, 9))) for _ in range(3)]
        heat = np.stack([s[0] for s in scenes])
        tags = np.stack([s[1] for s in scenes])
        config = DecodeConfig.preset("higherhrnet", refine=refine)
        via_torch = _torch_path.decode_tensors(
            torch.from_numpy(heat), torch.from_numpy(tags), config, d, 2
        )
        for a, b in zip(decode(heat, tags, config), via_torch, strict=True):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.tags, b.tags)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64], ids=str)
def test_cuda_tensors_equal_the_cpu_path(dtype, rng):
    for _ in range(5):
        scenes = [random_scene(rng, 17, 64, 48, 2, 12) for _ in range(4)]
        heat = torch.from_numpy(np.stack([s[0] for s in scenes])).to(dtype)
        tags = torch.from_numpy(np.stack([s[1] for s in scenes])).to(dtype)
        on_gpu = decode(heat.cuda(), tags.cuda())
        on_cpu = decode(heat, tags)
        for a, b in zip(on_gpu, on_cpu, strict=True):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.tags, b.tags)


# --- errors ---------------------------------------------------------------------------------
H4 = np.zeros((1, 2, 5, 6), np.float32)
T4 = np.zeros((1, 2, 5, 6), np.float32)


@pytest.mark.parametrize(
    ("heatmaps", "tags", "error", "match"),
    [
        (H4[0], T4, ValueError, r"heatmaps must have shape \(B, K, H, W\)"),
        (H4, T4[0], ValueError, r"tags must have shape"),
        (H4, np.zeros((1, 3, 5, 6), np.float32), ValueError, r"tags must match heatmaps"),
        (H4, np.zeros((1, 2, 1, 5, 7), np.float32), ValueError, r"tags must match heatmaps"),
        (H4, np.zeros((1, 2, 0, 5, 6), np.float32), ValueError, r"D >= 1"),
        (H4.astype(int), T4, TypeError, r"heatmaps must have a floating-point dtype"),
        (H4, T4.astype(bool), TypeError, r"tags must have a floating-point dtype"),
        (H4.tolist(), T4, TypeError, r"heatmaps must be a numpy.ndarray or torch.Tensor"),
        (H4, torch.zeros(1, 2, 5, 6), TypeError, r"numpy arrays or both torch tensors"),
        (np.full_like(H4, np.nan), T4, ValueError, r"heatmaps contains 60 NaN"),
        (H4, np.full_like(T4, np.inf), ValueError, r"tags contains 60 NaN or infinite"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(heatmaps, tags, error, match):
    with pytest.raises(error, match=match):
        decode(heatmaps, tags)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["float16", "float32", "float64", "torch-bfloat16"])
def test_one_non_finite_value_anywhere_is_reported(bad, kind, rng):
    heat = rng.random((2, 3, 7, 9)).astype(np.float32)
    tags = rng.random((2, 3, 7, 9)).astype(np.float32)
    i = tuple(int(rng.integers(0, s)) for s in heat.shape)
    for name, target in (("heatmaps", heat), ("tags", tags)):
        h, t = heat.copy(), tags.copy()
        (h if target is heat else t)[i] = bad
        if kind == "torch-bfloat16":
            h, t = torch.from_numpy(h).bfloat16(), torch.from_numpy(t).bfloat16()
        else:
            h, t = h.astype(kind), t.astype(kind)
        with pytest.raises(ValueError, match=f"{name} contains 1 NaN or infinite"):
            decode(h, t)


_KERNEL_PATH_CONFIGS = {  # one config per batch kernel (decode_options.KERNEL_PATHS)
    "references": DecodeConfig.preset("higherhrnet"),
    "crowd": DecodeConfig(),
    "crowd-whole-map": DecodeConfig(refine_window=None, refine_exclusive=False, spatial_gate=None),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("joint", [0, 1])
@pytest.mark.parametrize("path", sorted(_KERNEL_PATH_CONFIGS))
def test_non_finite_tags_are_reported_on_every_kernel_pass(bad, refine, joint, path):
    # one person: joint 0 detected, joint 1 missing, so with refine on the missing-joint
    # search reads joint 1's tags and a pass of their own reads joint 0's; the bad tag
    # sits away from the candidate, in image 1 of 3
    config = dataclasses.replace(_KERNEL_PATH_CONFIGS[path], refine=refine)
    if refine:
        want = decode_options.build(config, 2, 9, 11, np.dtype("float32"))
        assert decode_options.kernel_path(config, want) == path
    heat = np.zeros((3, 2, 9, 11), np.float32)
    heat[:, 0, 2, 3] = 1.0
    tags = np.zeros((3, 2, 9, 11), np.float32)
    tags[1, joint, 7, 8] = bad
    for h, t in ((heat, tags), (torch.from_numpy(heat), torch.from_numpy(tags))):
        with pytest.raises(ValueError, match="tags contains 1 NaN or infinite"):
            decode(h, t, config)
        with pytest.raises(ValueError, match="tags contains 1 NaN or infinite"):
            decode(h[1:2], t[1:2], config, num_threads=1)
    (poses,) = decode(heat[:1], tags[:1], config)
    assert len(poses) == 1
    if refine:  # the search filled joint 1 (at the best pixel of a zero map)
        assert poses.keypoints[0, 1, 2] >= 0


@pytest.mark.parametrize("preset", ["higherhrnet", "mmpose-1.x", "crowd"])
@pytest.mark.parametrize("where", ["heatmaps", "tags"])
def test_non_finite_values_are_reported_by_every_preset(preset, where, rng):
    heat, tags = random_scene(rng, 4, 12, 14, 2, 3)
    heat, tags = np.stack([heat, heat]), np.stack([tags, tags])
    target = heat if where == "heatmaps" else tags
    for _ in range(5):
        h, t = heat.copy(), tags.copy()
        i = tuple(int(rng.integers(0, s)) for s in target.shape)
        (h if where == "heatmaps" else t)[i] = np.nan
        with pytest.raises(ValueError, match=f"{where} contains 1 NaN or infinite"):
            decode(h, t, DecodeConfig.preset(preset))


def test_huge_finite_values_are_accepted():
    heat = np.zeros((1, 1, 6, 6), np.float32)
    heat[0, 0, 0, 0] = heat[0, 0, 5, 5] = 3e38  # their sum overflows; the values are finite
    assert len(decode(heat, np.zeros_like(heat), refine=False)[0]) == 2


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_people": 0}, ValueError, "max_people must be >= 1"),
        ({"max_people": 2.5}, TypeError, "max_people must be an integer"),
        ({"max_people": True}, TypeError, "max_people must be an integer"),
        ({"detection_threshold": -0.1}, ValueError, "detection_threshold must be >= 0"),
        ({"detection_threshold": float("nan")}, ValueError, "detection_threshold must be finite"),
        ({"tag_threshold": "1"}, TypeError, "tag_threshold must be a real number"),
        ({"nms_kernel": 4}, ValueError, "nms_kernel must be an odd integer"),
        ({"nms_kernel": 0}, ValueError, "nms_kernel must be >= 1"),
        ({"matching": "optimal"}, ValueError, "matching must be one of"),
        ({"tag_distance": "L2"}, ValueError, "tag_distance must be one of"),
        ({"adjust": 1}, TypeError, "adjust must be a bool"),
        ({"adjust_rule": "sign"}, ValueError, "adjust_rule must be one of"),
        ({"center_shift": float("inf")}, ValueError, "center_shift must be finite"),
        ({"refine_mode": "hrnet"}, ValueError, "refine_mode must be one of"),
        ({"match_people": 30}, ValueError, "match_people must be one of"),
        ({"max_instances": 0}, ValueError, "max_instances must be >= 1"),
        ({"joint_order": (0, 0)}, ValueError, "joint_order must be a permutation"),
        ({"joint_order": "01"}, TypeError, "joint_order must be a sequence"),
        (
            {"joint_order": (1, 0, 2)},
            ValueError,
            r"joint_order must be a permutation of range\(K\)",
        ),
        ({"bogus": 1}, TypeError, "unknown option"),
    ],
)
def test_bad_options_raise_naming_the_option(options, error, match):
    with pytest.raises(error, match=match):
        decode(H4, T4, **options)


def test_config_and_options_combine():
    heat = np.zeros((1, 1, 5, 9), np.float32)
    heat[0, 0, 2, ::2] = 0.5  # five separate peaks
    config = DecodeConfig(refine=False, max_people=3)
    assert len(decode(heat, np.zeros_like(heat), config)[0]) == 3
    assert len(decode(heat, np.zeros_like(heat), config, max_people=4)[0]) == 4
    assert len(decode(heat, np.zeros_like(heat), config, nms_kernel=1)[0]) == 3
    with pytest.raises(TypeError, match="config must be a DecodeConfig"):
        decode(H4, T4, {"refine": False})
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        decode(H4, T4, num_threads=0)
    with pytest.raises(ValueError, match="name must be one of"):
        DecodeConfig.preset("openpose")
    assert DecodeConfig.preset("mmpose-1.x", max_instances=None).max_instances is None
    cfg = DecodeConfig(joint_order=np.array([1, 0]))
    assert cfg.joint_order == (1, 0)
    with pytest.raises(dataclasses_frozen_error()):
        cfg.max_people = 3


def dataclasses_frozen_error():
    return dataclasses.FrozenInstanceError


def test_joint_order_changes_the_grouping():
    # tags 0, 0.9, 1.8 on joints 0, 1, 2: the first two joints matched form the person
    heat = np.zeros((1, 3, 9, 9), np.float32)
    tags = np.zeros_like(heat)
    for j, (y, x, t) in enumerate([(1, 1, 0.0), (4, 4, 0.9), (7, 7, 1.8)]):
        heat[0, j, y, x] = 0.5
        tags[0, j, y, x] = t
    for order, together in (((0, 1, 2), [0, 1]), ((1, 2, 0), [1, 2])):
        poses = decode(heat, tags, refine=False, joint_order=order)[0]
        assert len(poses) == 2
        groups = sorted(np.flatnonzero(p[:, 2] > 0).tolist() for p in poses.keypoints)
        assert together in groups


# --- Poses ----------------------------------------------------------------------------------
def test_poses_conversions_keep_missing_joints_nan():
    kp = np.array([[[1.5, 2.5, 0.9], [np.nan, np.nan, 0.0]]], np.float32)
    poses = Poses(kp, np.array([0.45], np.float32), np.zeros((1, 2), np.float32))
    moved = poses.transform([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    assert moved.keypoints.dtype == np.float64
    assert moved.keypoints[0, 0].tolist() == [4.0, 6.5, pytest.approx(0.9)]
    assert np.isnan(moved.keypoints[0, 1, :2]).all()
    assert moved.keypoints[0, 1, 2] == 0
    rotated = poses.transform([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    assert rotated.keypoints[0, 0, :2].tolist() == [-2.5, 1.5]
    scaled = poses.rescale((2.0, 4.0), (1.0, 2.0))
    assert scaled.keypoints[0, 0, :2].tolist() == [4.0, 12.0]
    assert np.isnan(scaled.keypoints[0, 1, :2]).all()
    assert scaled.scores is poses.scores
    assert len(scaled) == 1
    assert "P=1, K=2, D=2" in repr(poses)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.transform(np.eye(3)), r"matrix must have shape \(2, 3\)"),
        (lambda p: p.transform([[np.nan, 0, 0], [0, 1, 0]]), "matrix contains 1 NaN"),
        (lambda p: p.rescale((1, 2, 3)), "scale must be a number or a pair"),
        (lambda p: p.rescale(1.0, (np.inf, 0)), "offset contains 1 NaN"),
    ],
)
def test_poses_conversion_errors(call, match):
    poses = Poses(np.zeros((1, 2, 3)), np.zeros(1), np.zeros((1, 1)))
    with pytest.raises(ValueError, match=match):
        call(poses)


def test_poses_validates_shapes():
    with pytest.raises(ValueError, match="must agree"):
        Poses(np.zeros((2, 3, 3)), np.zeros(1), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="keypoints must have 3 dimensions"):
        Poses(np.zeros((2, 3)), np.zeros(2), np.zeros((2, 1)))
    with pytest.raises(TypeError, match=r"scores must be a numpy\.ndarray"):
        Poses(np.zeros((2, 3, 3)), [0, 0], np.zeros((2, 1)))


# ------------------------------------------------------------------------------ DARK refinement


def _dark_reference(kp, hm, shift=0.5, eps=1e-10):
    """Plain loop: the Newton step on log(max(h, eps)) at the joint's nearest pixel."""
    out = np.array(kp, np.float64, copy=True)
    _, h, w = hm.shape
    for p in range(kp.shape[0]):
        for k in range(kp.shape[1]):
            x, y = kp[p, k, 0], kp[p, k, 1]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            j, i = int(np.floor(x - shift + 0.5)), int(np.floor(y - shift + 0.5))
            if not (1 <= j <= w - 2 and 1 <= i <= h - 2):
                continue
            L = np.log(np.maximum(hm[k, i - 1 : i + 2, j - 1 : j + 2].astype(np.float64), eps))
            grad = np.array([(L[1, 2] - L[1, 0]) / 2, (L[2, 1] - L[0, 1]) / 2])
            hxx = L[1, 2] - 2 * L[1, 1] + L[1, 0]
            hyy = L[2, 1] - 2 * L[1, 1] + L[0, 1]
            hxy = (L[2, 2] - L[2, 0] - L[0, 2] + L[0, 0]) / 4
            hess = np.array([[hxx, hxy], [hxy, hyy]])
            if not np.all(np.linalg.eigvalsh(hess) < 0):
                continue
            step = -np.linalg.solve(hess, grad)
            if np.abs(step).max() > 1:
                continue
            out[p, k, 0] = j + shift + step[0]
            out[p, k, 1] = i + shift + step[1]
    return out


def test_refine_dark_finds_the_centre_of_gaussian_peaks(rng):
    k, h, w = 5, 24, 20
    truth = np.stack([rng.uniform(2, w - 2, k), rng.uniform(2, h - 2, k)], -1)
    people = np.concatenate([truth, np.ones((k, 1))], -1)[None]  # one person, K joints
    hm = ae.render_heatmaps(people, (h, w), sigma=1.7, method="exact")
    # decoded positions: the peak pixel, quarter-adjusted as decode reports them
    poses = ae.decode(hm[None], np.zeros((1, k, h, w), np.float32), refine=False)[0]
    assert len(poses) == 1
    refined = poses.refine_dark(hm)
    np.testing.assert_allclose(refined.keypoints[0, :, :2], truth, atol=1e-4)
    assert np.abs(poses.keypoints[0, :, :2] - truth).max() > 0.05  # quarter rule is coarser
    np.testing.assert_array_equal(refined.scores, poses.scores)
    np.testing.assert_array_equal(refined.keypoints[..., 2], poses.keypoints[..., 2])
    # integer pixel coordinates (center_shift 0) give the same answer minus 0.5
    shifted = ae.Poses(poses.keypoints - [0.5, 0.5, 0.0], poses.scores, poses.tags)
    np.testing.assert_allclose(
        shifted.refine_dark(hm, center_shift=0.0).keypoints[0, :, :2], truth - 0.5, atol=1e-4
    )


@pytest.mark.parametrize("seed", range(5))
def test_refine_dark_equals_a_plain_loop_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    k, h, w, p = 4, 9, 11, 6
    hm = rng.uniform(0, 1, (k, h, w)).astype(np.float32)
    hm[0, 2:5, 3:6] = 0  # flat zeros: log floor, no maximum
    kp = np.stack(
        [rng.uniform(-1, w + 1, (p, k)), rng.uniform(-1, h + 1, (p, k)), rng.uniform(0, 1, (p, k))],
        -1,
    )
    kp[0, 1, :2] = np.nan  # a missing joint
    kp[0, 1, 2] = 0
    # some joints at smooth maxima, where the step is accepted
    yy, xx = np.mgrid[:h, :w] + 0.5
    hm[2] = np.exp(-((xx - 5.2) ** 2 + (yy - 4.7) ** 2) / 3)
    kp[1:3, 2, :2] = [[5.5, 4.5], [4.5, 5.5]]
    poses = ae.Poses(kp, kp[:, :, 2].mean(1), np.zeros((p, 1)))
    got = poses.refine_dark(hm).keypoints
    want = _dark_reference(kp, hm)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.isnan(got[0, 1, :2]).all()
    np.testing.assert_allclose(got[1:3, 2, :2], [[5.2, 4.7], [5.2, 4.7]], atol=1e-6)
    # a tensor gives the same
    got_t = poses.refine_dark(torch.from_numpy(hm)).keypoints
    np.testing.assert_array_equal(got_t, got)


def test_refine_dark_rejects_bad_input():
    poses = ae.Poses(np.zeros((1, 2, 3)), np.zeros(1), np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(K, H, W\) with K = 2"):
        poses.refine_dark(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="heatmaps must have shape"):
        poses.refine_dark(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="heatmaps must have a floating-point dtype"):
        poses.refine_dark(np.zeros((2, 5, 5), np.int64))
    bad = np.zeros((2, 5, 5), np.float32)
    bad[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="heatmaps contains 1 NaN"):
        poses.refine_dark(bad)
    with pytest.raises(ValueError, match="eps"):
        poses.refine_dark(np.zeros((2, 5, 5), np.float32), eps=0.0)


def test_a_preset_name_is_a_config():
    heat = np.zeros((1, 2, 8, 8), np.float32)
    heat[0, :, 3, 4] = 1.0
    tags = np.zeros_like(heat)
    for name in ("higherhrnet", "mmpose-1.x", "crowd"):
        by_name = _decode(heat, tags, name)[0]
        by_config = _decode(heat, tags, DecodeConfig.preset(name))[0]
        np.testing.assert_array_equal(by_name.keypoints, by_config.keypoints)
    with pytest.raises(ValueError, match="name must be one of"):
        _decode(heat, tags, "mmpose")


def test_flattened_tags_name_the_layout_and_the_reshape():
    heat = np.zeros((2, 17, 8, 8), np.float32)
    flat = np.zeros((2, 34, 8, 8), np.float32)  # mmpose: (B, D*K, H, W), channel d*K + k
    with pytest.raises(ValueError, match=r"D\*K.*\(B, K, D, H, W\).*reshape\(B, 2, K, H, W\)"):
        _decode(heat, flat)
    with pytest.raises(ValueError, match=r"view\(B, 2, K, H, W\)\.transpose\(1, 2\)"):
        _decode(torch.from_numpy(heat), torch.from_numpy(flat))
    # the reshape it names decodes
    fixed = flat.reshape(2, 2, 17, 8, 8).transpose(0, 2, 1, 3, 4)
    assert len(_decode(heat, np.ascontiguousarray(fixed))) == 2


def test_max_people_does_not_limit_the_people_returned_max_instances_does():
    heat = np.zeros((1, 4, 16, 16), np.float32)
    tags = np.zeros_like(heat)
    for k in range(4):  # joint type k: 4 peaks in row 2 + 4k, every peak its own tag
        heat[0, k, 2 + 4 * k, 2::4] = 0.9
        tags[0, k, 2 + 4 * k, 2::4] = (4 * k + np.arange(4)) * 3.0
    assert len(_decode(heat, tags, max_people=4)[0]) == 16  # 4 candidates per joint type
    assert len(_decode(heat, tags, max_people=30, max_instances=4)[0]) == 4


@pytest.mark.parametrize(
    ("dtypes", "error", "message"),
    [
        ("float16", ValueError, "dtypes must be among ('float32', 'float64'), got 'float16'"),
        (["float32", "int8"], ValueError, "got 'int8'"),
        ([], ValueError, "dtypes must name at least one of"),
        (3, TypeError, "dtypes must be a str or a sequence of str, got int"),
    ],
)
def test_warmup_names_a_bad_dtype(dtypes, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        warmup(dtypes)


def test_warmup_runs_each_share_of_each_dtype(monkeypatch):
    """``warmup`` compiles the crowd share here and the other share in a second process (or
    here, without one), then loads that share; each dtype once, in the order given."""
    import associative_embedding.decoding as decoding
    from associative_embedding._decode import compile_ahead

    runs, children = [], []
    monkeypatch.setattr(decoding, "warm_share", lambda share, dt: runs.append((share, dt)))
    monkeypatch.setattr(compile_ahead, "start_warmup_child", lambda arg: children.append(arg))
    warmup(("float64", "float32", "float64"))
    assert children == ["float64,float32"]
    assert runs == [
        ("crowd", "float64"),
        ("crowd", "float32"),
        ("other", "float64"),
        ("other", "float32"),
    ]
    runs.clear()
    warmup()
    assert runs == [("crowd", "float32"), ("other", "float32")]
