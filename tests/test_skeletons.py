from __future__ import annotations

import pytest

import associative_embedding as ae


@pytest.mark.parametrize("skeleton", [ae.COCO_KEYPOINTS, ae.MPII_KEYPOINTS])
def test_builtin_skeletons_are_consistent(skeleton):
    k = skeleton.num_joints
    assert len(skeleton.keypoints) == len(set(skeleton.keypoints)) == k
    assert [skeleton.flip_index[skeleton.flip_index[i]] for i in range(k)] == list(range(k))
    # the flip index swaps left and right names and keeps the others
    for i, name in enumerate(skeleton.keypoints):
        other = skeleton.keypoints[skeleton.flip_index[i]]
        expected = name.replace("left", "#").replace("right", "left").replace("#", "right")
        assert other == expected


def test_coco_matches_references():
    coco = ae.COCO_KEYPOINTS
    assert coco.num_joints == 17
    assert coco.joint_order == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
    assert coco.flip_index == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert coco.sigmas[0] == 0.026
    assert coco.sigmas[-1] == 0.089
    assert len(coco.edges) == 19
    assert ae.MPII_KEYPOINTS.num_joints == 16
    assert ae.MPII_KEYPOINTS.sigmas is None


def test_skeleton_validation():
    ok = dict(
        name="x", keypoints=("a", "b"), flip_index=(0, 1), edges=((0, 1),), joint_order=(1, 0)
    )
    assert ae.Skeleton(**ok).num_joints == 2
    with pytest.raises(ValueError, match="flip_index must be a permutation"):
        ae.Skeleton(**{**ok, "flip_index": (0, 0)})
    with pytest.raises(ValueError, match="joint_order must be a permutation"):
        ae.Skeleton(**{**ok, "joint_order": (0, 2)})
    with pytest.raises(ValueError, match="edges must index joints"):
        ae.Skeleton(**{**ok, "edges": ((0, 2),)})
    with pytest.raises(ValueError, match="sigmas must have length K=2"):
        ae.Skeleton(**{**ok, "sigmas": (0.1,)})
    with pytest.raises(ValueError, match="empty"):
        ae.Skeleton(**{**ok, "keypoints": (), "flip_index": (), "joint_order": (), "edges": ()})
    three = dict(name="y", keypoints=("a", "b", "c"), edges=(), joint_order=(0, 1, 2))
    with pytest.raises(ValueError, match="its own inverse"):
        ae.Skeleton(**three, flip_index=(1, 2, 0))
