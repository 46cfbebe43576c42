"""Keypoint skeletons: joint names, flip indices, limbs, OKS sigmas, parsing order.

Four skeletons ship with the library: :data:`COCO_KEYPOINTS` (17 joints),
:data:`MPII_KEYPOINTS` (16 joints), :data:`CROWDPOSE_KEYPOINTS` (14 joints) and
:data:`AIC_KEYPOINTS` (AI Challenger, 14 joints). Build your own :class:`Skeleton`
for other data sets (only a name and the joint names are required); every
function that needs a flip index or a joint order takes one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AIC_KEYPOINTS", "COCO_KEYPOINTS", "CROWDPOSE_KEYPOINTS", "MPII_KEYPOINTS", "Skeleton"]


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A keypoint layout.

    Parameters
    ----------
    name : str
        Short name of the layout, e.g. ``"coco"``.
    keypoints : sequence of str, length K
        Joint names in channel order.
    flip_index : sequence of int, length K, optional
        ``flip_index[k]`` is the joint that joint ``k`` becomes in a horizontally
        mirrored image (left and right swap). Applying it twice is the identity.
        Default: the identity ``(0, 1, ..., K - 1)``, right for joint sets
        without left/right pairs; give the pairs otherwise, or flip tests and
        flip augmentation will mix up the sides.
    edges : sequence of (int, int), optional
        Limbs as pairs of 0-based joint indices, used for drawing. Default:
        none (joints are drawn as points).
    joint_order : sequence of int, length K, optional
        The order in which the decoder walks the joint types: a permutation of
        ``range(K)``, head and torso first, limbs last for people. Default: the
        natural order ``(0, 1, ..., K - 1)``, as mmpose 0.x's bottom-up parser
        (``mmpose/core/post_processing/group.py``, ``_Params``) uses for every
        joint set but COCO's.
    sigmas : sequence of float, length K, optional
        Per-joint OKS falloff constants (COCO's ``kpt_oks_sigmas``), or ``None``
        (the default) when the data set defines none.

    Raises
    ------
    ValueError
        If the lengths disagree, ``flip_index`` is not an involutive permutation,
        ``joint_order`` is not a permutation, or an edge names an unknown joint.

    Notes
    -----
    All sequences are stored as tuples, so a skeleton is hashable.
    """

    name: str
    keypoints: tuple[str, ...]
    flip_index: tuple[int, ...] = None  # type: ignore[assignment]  # identity
    edges: tuple[tuple[int, int], ...] = ()
    joint_order: tuple[int, ...] = None  # type: ignore[assignment]  # natural order
    sigmas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        natural = tuple(range(k))
        # frozen dataclass: normalise the fields through object.__setattr__
        normalised = {
            "keypoints": tuple(self.keypoints),
            "flip_index": natural if self.flip_index is None else tuple(self.flip_index),
            "edges": tuple((a, b) for a, b in self.edges),
            "joint_order": natural if self.joint_order is None else tuple(self.joint_order),
            "sigmas": None if self.sigmas is None else tuple(self.sigmas),
        }
        for field, value in normalised.items():
            object.__setattr__(self, field, value)
        if k == 0:
            raise ValueError("keypoints must name at least one joint, got an empty tuple")
        for field in ("flip_index", "joint_order"):
            perm = getattr(self, field)
            if sorted(perm) != list(range(k)):
                raise ValueError(
                    f"{field} must be a permutation of range(K) with K={k}, got {tuple(perm)}"
                )
        if any(self.flip_index[self.flip_index[i]] != i for i in range(k)):
            raise ValueError(
                f"flip_index must be its own inverse (left<->right swaps), got {self.flip_index}"
            )
        for a, b in self.edges:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"edges must index joints in [0, {k}), got edge ({a}, {b})")
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"sigmas must have length K={k}, got length {len(self.sigmas)}")

    @property
    def num_joints(self) -> int:
        """Number of joint types K."""
        return len(self.keypoints)


COCO_KEYPOINTS = Skeleton(
    name="coco",
    keypoints=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    # HigherHRNet FLIP_CONFIG['COCO'], pose-ae-train flipRef
    flip_index=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    # COCO's person "skeleton", converted to 0-based indices
    edges=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    # pose-ae-train Params.partOrder, used unchanged by HigherHRNet and mmpose:
    # nose, eyes, ears, shoulders, hips, elbows, wrists, knees, ankles
    joint_order=(0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16),
    # pycocotools COCOeval kpt_oks_sigmas
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),
)
"""COCO person keypoints (17 joints), with the reference implementations' flip
index, parsing order and pycocotools' OKS sigmas."""

MPII_KEYPOINTS = Skeleton(
    name="mpii",
    keypoints=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    flip_index=(5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10),
    edges=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (7, 13),
        (13, 14),
        (14, 15),
    ),
    # No reference parser ships an MPII order; this one follows the COCO order's
    # logic (head, torso, then limbs from the body outwards).
    joint_order=(9, 8, 7, 12, 13, 6, 2, 3, 11, 14, 10, 15, 1, 4, 0, 5),
    sigmas=None,
)
"""MPII human pose keypoints (16 joints). MPII defines no OKS sigmas."""

CROWDPOSE_KEYPOINTS = Skeleton(
    name="crowdpose",
    # joint names, flip pairs ("swap"), limbs and sigmas of mmpose
    # configs/_base_/datasets/crowdpose.py (CrowdPose, Li et al., CVPR 2019)
    # COCO's 12 body joints in COCO's order, then the top of the head and the neck
    keypoints=(*COCO_KEYPOINTS.keypoints[5:], "top_head", "neck"),
    flip_index=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13),
    edges=(
        (10, 8),
        (8, 6),
        (11, 9),
        (9, 7),
        (6, 7),
        (0, 6),
        (1, 7),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (12, 13),
        (1, 13),
        (0, 13),
    ),
    # mmpose 0.x's parser walks every joint set but COCO's in channel order
    joint_order=tuple(range(14)),
    # mmpose's list: COCO's sigmas of the 12 body joints, then 0.079 for top_head and neck
    sigmas=(*COCO_KEYPOINTS.sigmas[5:], 0.079, 0.079),
)
"""CrowdPose keypoints (14 joints), with the flip pairs, limbs and OKS sigmas of
mmpose's CrowdPose data set configuration."""

AIC_KEYPOINTS = Skeleton(
    name="aic",
    # joint names, flip pairs ("swap"), limbs and sigmas of mmpose
    # configs/_base_/datasets/aic.py (AI Challenger, Wu et al., 2017)
    keypoints=(
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "head_top",
        "neck",
    ),
    flip_index=(3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8, 12, 13),
    edges=(
        (2, 1),
        (1, 0),
        (0, 13),
        (13, 3),
        (3, 4),
        (4, 5),
        (8, 7),
        (7, 6),
        (6, 9),
        (9, 10),
        (10, 11),
        (12, 13),
        (0, 6),
        (3, 9),
    ),
    joint_order=tuple(range(14)),
    # AI Challenger's keypoint_eval.py deltas halved (mmpose: "delta = 2 x sigma")
    sigmas=(
        0.01388152,
        0.01515228,
        0.01057665,
        0.01417709,
        0.01497891,
        0.01402144,
        0.03909642,
        0.03686941,
        0.01981803,
        0.03843971,
        0.03412318,
        0.02415081,
        0.01291456,
        0.01236173,
    ),
)
"""AI Challenger keypoints (14 joints), with the flip pairs, limbs and OKS
sigmas of mmpose's AI Challenger data set configuration."""
