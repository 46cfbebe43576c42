"""The crowd grouping options of ae.decode against a slow plain-Python oracle, and their promises."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from associative_embedding.decoding import DecodeConfig, decode, warmup
from tests.reference_crowd import crowd_parse


@pytest.fixture(scope="session", autouse=True)
def _compiled():
    warmup()


def crowd_scene(rng, k, size, d, n_people, dtype, coarse=False):
    """People as clusters of Gaussian peaks with noisy, close tags, plus spurious peaks."""
    h = w = size
    heat = rng.random((k, h, w)) * 0.05
    tags = rng.standard_normal((k, d, h, w)) * 2
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform(0, size, (n_people, 2))
    person_tags = rng.uniform(-0.6, 0.6, (n_people, 1)) * n_people + rng.normal(
        0, 0.1, (n_people, d)
    )
    for p in range(n_people):
        radius = rng.uniform(2, size / 3)
        for j in range(k):
            if rng.random() < 0.15:
                continue
            x, y = centres[p] + rng.uniform(-radius, radius, 2)
            amp = rng.uniform(0.02, 0.09) if rng.random() < 0.15 else rng.uniform(0.2, 1.0)
            g = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * rng.uniform(0.5, 1.5) ** 2))
            own = g > heat[j]
            heat[j] = np.maximum(heat[j], g)
            tag = person_tags[p] + rng.normal(0, 0.3, d)
            tags[j] = np.where(
                own & (g > 0.01), tag[:, None, None] + rng.normal(0, 0.05, (d, h, w)), tags[j]
            )
    for _ in range(int(rng.integers(0, 4))):  # spurious detections
        j = int(rng.integers(k))
        heat[j, rng.integers(h), rng.integers(w)] = rng.uniform(0.11, 0.5)
    if coarse:  # ties everywhere: equal values, equal distances
        heat = np.round(heat * 8) / 8
        tags = np.round(tags * 4) / 4
    return heat.astype(dtype), tags.astype(dtype)


def assert_same(poses, ref):
    for got, want in zip((poses.keypoints, poses.scores, poses.tags), ref, strict=True):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def oracle_options(config):
    """The DecodeConfig's fields as the oracle's keyword options."""
    return dataclasses.asdict(config)


CROWD = DecodeConfig.preset("crowd")

OPTION_SETS = [
    {"tag_cost": "tiebreak"},
    {"tag_cost": "exact"},
    {"tag_cost": "exact", "use_detection_value": False},
    {"regroup": 3},
    {"regroup": 1, "tag_cost": "tiebreak", "match_people": "all"},
    {"regroup": 3, "tag_cost": "exact", "spatial_weight": 1.0},
    {"regroup": 2, "spatial_gate": 0.7, "tag_distance": "rms"},
    {"regroup": 3, "tag_cost": "exact", "spatial_weight": 2.0, "spatial_gate": 0.5},
    {"regroup": 3, "max_instances": 4, "max_people": 5},
    {"refine_window": 0.5},
    {"refine_window": 0.0, "refine_mode": "pose-ae-train", "adjust_rule": "mmpose"},
    {"refine_tag_gate": True},
    {"refine_tag_gate": True, "refine_window": 1.0, "adjust": False, "center_shift": 0.0},
    {"min_score": 0.05},
    {"pose_nms": 0.5},
    {"pose_nms": 0.9, "min_score": 0.01, "refine": False},
    oracle_options(CROWD),
    {**oracle_options(CROWD), "ignore_too_much": True, "max_people": 3},
]


@pytest.mark.parametrize(
    "options",
    OPTION_SETS,
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if k in CROWD_KEYS),
)
@pytest.mark.parametrize("seed", range(3))
def test_equals_the_slow_oracle(options, seed):
    rng = np.random.default_rng(seed)
    for trial in range(4):
        k = int(rng.choice([3, 5, 17]))
        size = int(rng.integers(8, 40))
        d = int(rng.choice([1, 2, 3]))
        dtype = [np.float32, np.float64][trial % 2]
        n_people = int(rng.integers(0, 9))
        heat, tags = crowd_scene(rng, k, size, d, n_people, dtype, coarse=trial == 3)
        (poses,) = decode(heat[None], tags[None], num_threads=1, **options)
        assert_same(poses, crowd_parse(heat, tags, **options))


CROWD_KEYS = {
    "tag_cost",
    "regroup",
    "spatial_weight",
    "spatial_gate",
    "refine_window",
    "refine_tag_gate",
    "min_score",
    "pose_nms",
}
