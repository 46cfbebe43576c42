"""Poses: selection, iteration, concatenation and coordinate maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from associative_embedding import Person, Poses


def make_poses(rng, p=5, k=4, d=2):
    kp = rng.random((p, k, 3)).astype(np.float32)
    kp[0, 1, :2] = np.nan
    kp[0, 1, 2] = 0
    return Poses(kp, np.sort(rng.random(p).astype(np.float32))[::-1].copy(), rng.random((p, d)))


def test_boolean_mask_slice_and_index_arrays_select_like_numpy(rng):
    poses = make_poses(rng)
    for index in (
        poses.scores > 0.3,
        slice(1, 4),
        slice(None, None, -2),
        np.array([3, 0, 3]),
        [4, -1],
        torch.tensor([True, False, True, False, True]),
        np.zeros(0, np.int64),
    ):
        want = np.arange(5)[np.asarray(index) if not isinstance(index, slice) else index]
        got = poses[index]
        assert isinstance(got, Poses)
        np.testing.assert_array_equal(got.keypoints, poses.keypoints[want])
        np.testing.assert_array_equal(got.scores, poses.scores[want])
        np.testing.assert_array_equal(got.tags, poses.tags[want])
    assert len(poses[poses.scores > 2]) == 0


def test_integer_index_and_iteration_give_persons(rng):
    poses = make_poses(rng)
    people = list(poses)
    assert len(people) == 5 and all(isinstance(p, Person) for p in people)
    for i, person in enumerate(people):
        np.testing.assert_array_equal(person.keypoints, poses.keypoints[i])
        assert person.score == pytest.approx(float(poses.scores[i]))
        np.testing.assert_array_equal(person.tag, poses.tags[i])
    np.testing.assert_array_equal(poses[-1].keypoints, poses.keypoints[4])
    person = poses[np.int64(2)]
    person.keypoints[0, 0] = -99  # a copy
    assert poses.keypoints[2, 0, 0] != -99


def test_selection_errors_name_the_problem(rng):
    poses = make_poses(rng)
    with pytest.raises(IndexError, match="out of range for 5 people"):
        poses[5]
    with pytest.raises(IndexError, match="out of range"):
        poses[[0, 7]]
    with pytest.raises(ValueError, match=r"shape \(P,\) = \(5,\)"):
        poses[np.ones(3, bool)]
    with pytest.raises(TypeError, match="Poses indices"):
        poses[1.0]
    with pytest.raises(TypeError, match="1-D array of int"):
        poses[np.zeros((2, 2), np.int64)]


def test_concatenate(rng):
    a, b = make_poses(rng, p=3), make_poses(rng, p=2)
    both = Poses.concatenate([a, b])
    np.testing.assert_array_equal(both.keypoints, np.concatenate([a.keypoints, b.keypoints]))
    np.testing.assert_array_equal(both.scores, np.concatenate([a.scores, b.scores]))
    assert len(Poses.concatenate([a])) == 3
    with pytest.raises(ValueError, match="at least one"):
        Poses.concatenate([])
    with pytest.raises(ValueError, match="poses\\[1\\] has K=5"):
        Poses.concatenate([a, make_poses(rng, k=5)])
    with pytest.raises(TypeError, match="poses\\[1\\] must be a Poses"):
        Poses.concatenate([a, a.keypoints])


@pytest.mark.parametrize("scale", [0, -1.0, (2.0, 0.0), (-1, 1)])
def test_rescale_rejects_scales_that_are_not_positive(rng, scale):
    with pytest.raises(ValueError, match="scale must be > 0"):
        make_poses(rng).rescale(scale)
