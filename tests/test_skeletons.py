from __future__ import annotations

import pytest

import associative_embedding as ae


@pytest.mark.parametrize(
    "skeleton", [ae.COCO_KEYPOINTS, ae.MPII_KEYPOINTS, ae.CROWDPOSE_KEYPOINTS, ae.AIC_KEYPOINTS]
)
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


def test_defaults_identity_flip_and_natural_order():
    sk = ae.Skeleton("hand", ("wrist", "thumb", "index"))
    assert sk.flip_index == (0, 1, 2)
    assert sk.joint_order == (0, 1, 2)
    assert sk.edges == ()
    assert sk.sigmas is None
    # sequences of any kind are stored as tuples (the dataclass is frozen and hashable)
    listed = ae.Skeleton("x", ["a", "b"], [1, 0], [[0, 1]], [1, 0], [0.1, 0.2])
    assert listed == ae.Skeleton("x", ("a", "b"), (1, 0), ((0, 1),), (1, 0), (0.1, 0.2))
    assert hash(listed) == hash(ae.Skeleton("x", ("a", "b"), (1, 0), ((0, 1),), (1, 0), (0.1, 0.2)))


def _check_against_names(skeleton, names, swaps, links, sigmas):
    """Flip pairs and edges by joint name, as mmpose's dataset configs state them."""
    assert skeleton.keypoints == names
    for i, name in enumerate(names):
        partner = swaps.get(name, name)
        assert names[skeleton.flip_index[i]] == partner
    assert [(names[a], names[b]) for a, b in skeleton.edges] == links
    assert skeleton.sigmas == sigmas


def test_crowdpose_matches_mmpose():
    # mmpose configs/_base_/datasets/crowdpose.py: keypoint_info, skeleton_info, sigmas
    sides = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    names = (*[f"{s}_{j}" for j in sides for s in ("left", "right")], "top_head", "neck")
    swaps = {
        f"{a}_{j}": f"{b}_{j}" for j in sides for a, b in (("left", "right"), ("right", "left"))
    }
    links = [
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("left_hip", "right_hip"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"),
        ("top_head", "neck"),
        ("right_shoulder", "neck"),
        ("left_shoulder", "neck"),
    ]
    sigmas = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087)
    sigmas += (0.089, 0.089, 0.079, 0.079)
    sk = ae.CROWDPOSE_KEYPOINTS
    assert sk.name == "crowdpose" and sk.num_joints == 14
    _check_against_names(sk, names, swaps, links, sigmas)
    assert sk.joint_order == tuple(range(14))


def test_aic_matches_mmpose():
    # mmpose configs/_base_/datasets/aic.py: keypoint_info, skeleton_info, sigmas
    limbs = ("shoulder", "elbow", "wrist")
    legs = ("hip", "knee", "ankle")
    names = (
        *[f"{s}_{j}" for s in ("right", "left") for j in limbs],
        *[f"{s}_{j}" for s in ("right", "left") for j in legs],
        "head_top",
        "neck",
    )
    swaps = {
        f"{a}_{j}": f"{b}_{j}"
        for j in limbs + legs
        for a, b in (("left", "right"), ("right", "left"))
    }
    links = [
        ("right_wrist", "right_elbow"),
        ("right_elbow", "right_shoulder"),
        ("right_shoulder", "neck"),
        ("neck", "left_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("right_hip", "left_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("head_top", "neck"),
        ("right_shoulder", "right_hip"),
        ("left_shoulder", "left_hip"),
    ]
    sigmas = (0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144)
    sigmas += (0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081)
    sigmas += (0.01291456, 0.01236173)
    sk = ae.AIC_KEYPOINTS
    assert sk.name == "aic" and sk.num_joints == 14
    _check_against_names(sk, names, swaps, links, sigmas)
    assert sk.joint_order == tuple(range(14))
