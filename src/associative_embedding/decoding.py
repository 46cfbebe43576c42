"""Decode detection heatmaps and tag maps into people (the paper's parsing, §3.3).

:func:`decode` takes a batch of heatmaps ``(B, K, H, W)`` and tag maps
``(B, K, H, W)`` or ``(B, K, D, H, W)`` and returns one :class:`Poses` per image.
The per-image work (peak finding, grouping, quarter-pixel adjustment and
missing-joint recovery) runs in compiled numba code; a batch is spread over a
pool of threads. :class:`DecodeConfig` holds the options; its defaults are
HigherHRNet's COCO test settings, and :meth:`DecodeConfig.preset` gives the
settings of each reference implementation.

Coordinate convention: ``x`` is the column and ``y`` the row, in heatmap
pixels; the value of pixel ``(row i, column j)`` sits at ``x = j +
center_shift``, ``y = i + center_shift``, with ``center_shift = 0.5`` by
default (the pixel centre, as the reference parsers output after their
quarter-pixel adjustment). :meth:`Poses.transform` and :meth:`Poses.rescale`
map the result to image pixels.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._validation import (
    check_choice,
    check_finite,
    check_float_array,
    check_int,
    check_layout,
    check_number,
    is_tensor,
    shape_str,
)

__all__ = ["DecodeConfig", "Poses", "decode", "warmup"]

_COCO_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
_REFINE_BLOCK = 16  # side of the blocks the missing-joint search bounds and skips


# the "crowd" preset: see docs/grouping_modes.md for the measurements behind each value
CROWD_PRESET: dict[str, Any] = {
    "tag_cost": "exact",
    "regroup": 3,
    "spatial_weight": 1.0,
    "spatial_gate": 0.7,
    "refine_window": 0.5,
    "refine_tag_gate": True,
    "pose_nms": 0.9,
}


@dataclass(frozen=True)
class DecodeConfig:
    """Options of :func:`decode`; the defaults are HigherHRNet's COCO test settings.

    Every option names the reference implementation it follows (REFERENCE:
    pose-ae-train ``utils/group.py`` and ``test.py``; HigherHRNet
    ``lib/core/group.py`` and ``w32_512_adam_lr1e-3.yaml``; mmpose 1.x
    ``codecs/associative_embedding.py``). :meth:`preset` returns the settings
    that reproduce each of them.

    Parameters
    ----------
    max_people : int, default 30
        Candidates kept per joint type after NMS (the references' top-k,
        ``MAX_NUM_PEOPLE`` / ``decode_topk``), and the number of people taking
        part in matching when ``match_people="first"``. Clipped to ``H * W``.
    detection_threshold : float, default 0.1
        A peak is a candidate when its heatmap value is ``> detection_threshold``
        (HigherHRNet yaml and pose-ae-train ``test.py`` 0.1; must be >= 0).
    tag_threshold : float, default 1.0
        A candidate joins a person only if their tag distance is
        ``< tag_threshold``, else it starts a new person (all references 1.0).
    nms_kernel : int, default 5
        Side of the max-pool window of the non-maximum suppression; odd
        (HigherHRNet yaml and mmpose 5, pose-ae-train 3).
    matching : {"hungarian", "greedy"}, default "hungarian"
        ``"hungarian"``: per joint type, a linear assignment of candidates to
        people that makes the same choices as the ``munkres`` 1.1.4 package the
        references call. ``"greedy"``: the paper's text; each person, in
        creation order, takes the strongest unclaimed candidate within the tag
        threshold.
    use_detection_value : bool, default True
        Hungarian cost ``round(distance) * 100 - value`` (True, all references'
        test settings) or the plain ``distance`` (pose-ae-train ``Params``
        default). Unused by ``"greedy"``.
    tag_distance : {"l2", "rms"}, default "l2"
        Tag distance for matching: Euclidean (HigherHRNet, mmpose) or root mean
        square over the D tag dimensions, ``l2 / sqrt(D)`` (pose-ae-train). The
        missing-joint search always uses L2, as every reference does.
    joint_order : tuple of int or None, default None
        Order in which joint types are matched, a permutation of ``range(K)``.
        ``None`` means the references' COCO order (nose, eyes, ears, shoulders,
        hips, elbows, wrists, knees, ankles) when K == 17, else ``range(K)``.
    adjust : bool, default True
        Move every output joint by ±0.25 px towards the larger of its two
        horizontal and two vertical neighbours in the heatmap (all references).
    adjust_rule : {"reference", "mmpose"}, default "reference"
        ``"reference"``: -0.25 on ties, neighbours clipped at the border
        (pose-ae-train, HigherHRNet, mmpose 0.x). ``"mmpose"``: no move on ties,
        and no x-move unless ``1 < x < W - 1`` and ``y > 0``, no y-move unless
        ``1 < y < H - 1`` and ``x > 0`` (mmpose 1.x ``refine_keypoints``).
    center_shift : float, default 0.5
        Added to x and y of every joint: pixel ``(i, j)`` is reported at
        ``(j + center_shift, i + center_shift)``. 0.5 is the references' pixel
        centre; 0.0 gives integer pixel coordinates.
    refine : bool, default True
        Recover joints a person misses from the full maps (HigherHRNet
        ``REFINE``, pose-ae-train ``test.refine``, mmpose 1.x fill).
    refine_mode : {"higherhrnet", "pose-ae-train", "mmpose"}, default "higherhrnet"
        For a person missing joint k, every mode takes the reference tag as the
        mean of the tag maps at the person's matched joints. ``"higherhrnet"``:
        the pixel maximising ``heat_k - round(||tag_k - ref||)``, filled only if
        its heat is > 0, score = that heat. ``"pose-ae-train"``: the same pixel
        and condition, score 1. ``"mmpose"``: the pixel minimising
        ``round(||tag_k - ref||) * 100 - heat_k``, always filled, score = its
        heat, reported at the integer pixel (no ``center_shift``, no
        adjustment), as mmpose 1.x does.
    match_people : {"first", "all"}, default "first"
        ``"first"``: only the first ``max_people`` people, in creation order,
        can receive joints; later ones stay as they are (pose-ae-train,
        HigherHRNet). ``"all"``: every person takes part (mmpose 0.x with
        ``ignore_too_much=False``, mmpose 1.x).
    ignore_too_much : bool, default False
        Skip a joint type entirely once ``max_people`` or more people exist
        (pose-ae-train ``HeatmapParser`` True, HigherHRNet False). The
        references test ``len(first_max_people) == max_people``, which is this.
    max_instances : int or None, default None
        Keep only the first ``max_instances`` people in creation order, and
        match only against them (mmpose 1.x ``decode_max_instances``, which is
        30 in its COCO config). ``None``: keep everyone.
    tag_cost : {"rounded", "tiebreak", "exact"}, default "rounded"
        Hungarian cost of tag distance ``d`` and detection value ``v``:
        ``round(d) * 100 - v`` (all references), ``(round(d) * 100 + d) - v``
        (ties of the rounded distance broken by the distance) or ``d * 100 -
        v`` (the distance itself). ``v`` is left out when
        ``use_detection_value=False``. Not a reference setting unless
        ``"rounded"``; see :doc:`grouping_modes`.
    regroup : int, default 0
        Rounds of re-assignment after the first pass: every candidate is
        matched again, per joint type, to the people of the previous round
        (their final mean tags), until nothing changes. 0: off (references).
    spatial_weight : float, default 0.0
        In the re-assignment rounds, add ``spatial_weight * s`` to the tag
        distance in the cost, ``s`` being the candidate's distance to the
        person's nearest other joint divided by the person's size.
    spatial_gate : float or None, default None
        In the re-assignment rounds, a candidate joins a person only if ``s <
        spatial_gate``. ``None``: no gate.
    refine_window : float or None, default None
        Search a missing joint only inside the box of the person's detected
        joints widened by ``refine_window`` times the person's size.
        ``None``: the whole map (references).
    refine_tag_gate : bool, default False
        Fill a missing joint only where the tag distance to the person is
        below ``tag_threshold`` (the references fill wherever the heat is > 0).
    min_score : float, default 0.0
        Drop people whose score is not above ``min_score``.
    pose_nms : float or None, default None
        OKS threshold of a greedy pose non-maximum suppression in score order
        (after missing-joint recovery): a person whose OKS with a kept one
        exceeds it is dropped. ``None``: off (references).

    Raises
    ------
    TypeError
        If an option has the wrong type.
    ValueError
        If an option is out of range or not one of its choices.

    See Also
    --------
    decode : The function that takes these options.

    Notes
    -----
    The references map onto options as follows (:meth:`preset` returns them):

    - HigherHRNet (``w32_512`` yaml, ``FLIP_TEST``, ``ADJUST``, ``REFINE``): the
      defaults. With ``ADJUST: False`` and ``REFINE: False`` it reports integer
      pixels: use ``adjust=False, center_shift=0.0``. With ``ADJUST: False`` and
      ``REFINE: True`` it mixes integer detected joints with refined joints at
      ``+0.5 ± 0.25``, which no option reproduces (here both follow
      ``adjust`` and ``center_shift``).
    - pose-ae-train ``test.py``: ``nms_kernel=3, tag_distance="rms",
      ignore_too_much=True, refine_mode="pose-ae-train"``. Its ``refine`` clips
      the lower neighbour's row index to K - 1 (it uses ``det.shape[0]``); here
      the row is clipped to H - 1, so refined joints in rows >= K - 1 can differ
      from it by 0.5 px in y.
    - mmpose 0.x (``hrnet_w32_coco_512x512``): the defaults with
      ``match_people="all"``.
    - mmpose 1.x (``ae_hrnet-w32`` config): ``match_people="all",
      max_instances=30, adjust_rule="mmpose", refine_mode="mmpose"``. mmpose 1.x
      computes its matching distances and runs munkres in float32; here
      distances are float64 (as HigherHRNet), so on float32 maps it can choose
      differently when a distance lies within float32 rounding of a .5 or of
      the tag threshold.
    - ``DecodeConfig.preset("crowd")``: not a reference; the grouping measured
      best in crowds (:doc:`grouping_modes`).

    Examples
    --------
    >>> from associative_embedding import DecodeConfig
    >>> cfg = DecodeConfig(detection_threshold=0.2)
    >>> cfg.max_people, cfg.detection_threshold
    (30, 0.2)
    >>> DecodeConfig.preset("pose-ae-train").tag_distance
    'rms'
    """

    max_people: int = 30
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    nms_kernel: int = 5
    matching: Literal["hungarian", "greedy"] = "hungarian"
    use_detection_value: bool = True
    tag_distance: Literal["l2", "rms"] = "l2"
    joint_order: tuple[int, ...] | None = None
    adjust: bool = True
    adjust_rule: Literal["reference", "mmpose"] = "reference"
    center_shift: float = 0.5
    refine: bool = True
    refine_mode: Literal["higherhrnet", "pose-ae-train", "mmpose"] = "higherhrnet"
    match_people: Literal["first", "all"] = "first"
    ignore_too_much: bool = False
    max_instances: int | None = None
    tag_cost: Literal["rounded", "tiebreak", "exact"] = "rounded"
    regroup: int = 0
    spatial_weight: float = 0.0
    spatial_gate: float | None = None
    refine_window: float | None = None
    refine_tag_gate: bool = False
    min_score: float = 0.0
    pose_nms: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_people", check_int(self.max_people, "max_people", low=1))
        set_(
            self,
            "detection_threshold",
            check_number(self.detection_threshold, "detection_threshold", low=0.0),
        )
        set_(self, "tag_threshold", check_number(self.tag_threshold, "tag_threshold", low=0.0))
        kernel = check_int(self.nms_kernel, "nms_kernel", low=1)
        if kernel % 2 == 0:
            raise ValueError(f"nms_kernel must be an odd integer, got {kernel}")
        set_(self, "nms_kernel", kernel)
        check_choice(self.matching, "matching", ("hungarian", "greedy"))
        check_choice(self.tag_distance, "tag_distance", ("l2", "rms"))
        check_choice(self.adjust_rule, "adjust_rule", ("reference", "mmpose"))
        check_choice(self.refine_mode, "refine_mode", ("higherhrnet", "pose-ae-train", "mmpose"))
        check_choice(self.match_people, "match_people", ("first", "all"))
        check_choice(self.tag_cost, "tag_cost", ("rounded", "tiebreak", "exact"))
        if self.tag_cost != "rounded" and self.matching != "hungarian":
            raise ValueError(
                f"tag_cost={self.tag_cost!r} needs matching='hungarian', got {self.matching!r}"
            )
        set_(self, "regroup", check_int(self.regroup, "regroup", low=0))
        set_(self, "spatial_weight", check_number(self.spatial_weight, "spatial_weight", low=0.0))
        set_(self, "min_score", check_number(self.min_score, "min_score"))
        for name, low, high, inclusive in (
            ("spatial_gate", 0.0, None, False),
            ("refine_window", 0.0, None, True),
            ("pose_nms", 0.0, 1.0, True),
        ):
            value = getattr(self, name)
            if value is not None:
                value = check_number(value, name, low=low, high=high, low_inclusive=inclusive)
                set_(self, name, value)
        for name in (
            "use_detection_value",
            "adjust",
            "refine",
            "ignore_too_much",
            "refine_tag_gate",
        ):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
            set_(self, name, bool(value))
        if (self.refine_window is not None or self.refine_tag_gate) and self.refine_mode not in (
            "higherhrnet",
            "pose-ae-train",
        ):
            raise ValueError(
                "refine_window and refine_tag_gate need refine_mode 'higherhrnet' or "
                f"'pose-ae-train', got {self.refine_mode!r}"
            )
        set_(self, "center_shift", check_number(self.center_shift, "center_shift"))
        if self.max_instances is not None:
            set_(self, "max_instances", check_int(self.max_instances, "max_instances", low=1))
        if self.joint_order is not None:
            order = self.joint_order
            if isinstance(order, (str, bytes)) or not isinstance(order, (Sequence, np.ndarray)):
                raise TypeError(
                    f"joint_order must be a sequence of int or None, got {type(order).__name__}"
                )
            values = tuple(check_int(v, "joint_order[i]") for v in order)
            if sorted(values) != list(range(len(values))):
                raise ValueError(f"joint_order must be a permutation of range(K), got {values}")
            set_(self, "joint_order", values)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> DecodeConfig:
        """Return the settings that reproduce one reference implementation.

        Parameters
        ----------
        name : {"higherhrnet", "pose-ae-train", "mmpose-0.x", "mmpose-1.x", "crowd"}
            The reference, with its COCO test settings, or ``"crowd"``: not a
            reference, HigherHRNet's settings with the grouping that was
            measured best in crowds (:doc:`grouping_modes`).
        **changes
            Options to override on top of the preset.

        Returns
        -------
        DecodeConfig
            The configuration.

        Raises
        ------
        ValueError
            If ``name`` is unknown.

        Examples
        --------
        >>> from associative_embedding import DecodeConfig
        >>> cfg = DecodeConfig.preset("mmpose-1.x")
        >>> cfg.match_people, cfg.max_instances, cfg.refine_mode
        ('all', 30, 'mmpose')
        """
        presets: dict[str, dict[str, Any]] = {
            "higherhrnet": {},
            "pose-ae-train": {
                "nms_kernel": 3,
                "tag_distance": "rms",
                "ignore_too_much": True,
                "refine_mode": "pose-ae-train",
            },
            "mmpose-0.x": {"match_people": "all"},
            "mmpose-1.x": {
                "match_people": "all",
                "max_instances": 30,
                "adjust_rule": "mmpose",
                "refine_mode": "mmpose",
            },
            "crowd": CROWD_PRESET,
        }
        check_choice(name, "name", tuple(presets))
        return cls(**{**presets[name], **changes})


@dataclass(frozen=True, eq=False)
class Poses:
    """The people decoded from one image, sorted by score (highest first).

    Parameters
    ----------
    keypoints : ndarray, shape (P, K, 3)
        ``x``, ``y``, score of every joint. Coordinates are heatmap pixels with
        pixel ``(row i, column j)`` at ``(j + center_shift, i + center_shift)``
        (``center_shift`` 0.5 by default) until converted with
        :meth:`transform` or :meth:`rescale`. A joint neither detected nor
        recovered has score 0 and NaN coordinates.
    scores : ndarray, shape (P,)
        Person score: the mean of the K detection values of its matched
        joints (missing ones count as 0), before missing-joint recovery.
    tags : ndarray, shape (P, D)
        Each person's mean tag over its matched joints.

    Raises
    ------
    ValueError
        If the shapes do not agree.

    See Also
    --------
    decode : Produces these.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import Poses
    >>> poses = Poses(np.zeros((2, 17, 3)), np.zeros(2), np.zeros((2, 1)))
    >>> len(poses)
    2
    """

    keypoints: np.ndarray
    scores: np.ndarray
    tags: np.ndarray

    def __post_init__(self) -> None:
        kp, sc, tg = self.keypoints, self.scores, self.tags
        for name, arr, ndim in (("keypoints", kp, 3), ("scores", sc, 1), ("tags", tg, 2)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
            if arr.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
        if kp.shape[2] != 3 or sc.shape[0] != kp.shape[0] or tg.shape[0] != kp.shape[0]:
            raise ValueError(
                "keypoints (P, K, 3), scores (P,) and tags (P, D) must agree, got "
                f"{shape_str(kp.shape)}, {shape_str(sc.shape)}, {shape_str(tg.shape)}"
            )

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def __repr__(self) -> str:
        p, k, _ = self.keypoints.shape
        return f"Poses(P={p}, K={k}, D={self.tags.shape[1]}, dtype={self.keypoints.dtype})"

    def transform(self, matrix: Any) -> Poses:
        """Map the coordinates through a 2x3 affine matrix (heatmap to image pixels).

        ``[x', y'] = matrix @ [x, y, 1]``: pass the inverse of the crop that
        produced the network input, scaled to heatmap resolution (HigherHRNet's
        ``get_affine_transform(center, scale, 0, heatmap_size, inv=1)``,
        pose-ae-train's ``pinv`` of the crop times the stride).

        Parameters
        ----------
        matrix : array_like, shape (2, 3)
            The affine transform.

        Returns
        -------
        Poses
            New poses with float64 keypoints; scores, tags and NaN coordinates of
            missing joints are kept.

        Raises
        ------
        ValueError
            If ``matrix`` is not 2x3 or not finite.

        Examples
        --------
        >>> import numpy as np
        >>> from associative_embedding import Poses
        >>> p = Poses(np.array([[[1.5, 2.5, 0.9]]]), np.array([0.9]), np.zeros((1, 1)))
        >>> p.transform([[4, 0, 10], [0, 4, 20]]).keypoints.tolist()
        [[[16.0, 30.0, 0.9]]]
        """
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (2, 3):
            raise ValueError(f"matrix must have shape (2, 3), got {shape_str(m.shape)}")
        check_finite(m, "matrix")
        kp = self.keypoints.astype(np.float64, copy=True)
        x = kp[..., 0].copy()
        y = kp[..., 1].copy()
        kp[..., 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        kp[..., 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        return Poses(kp, self.scores, self.tags)

    def rescale(self, scale: Any, offset: Any = 0.0) -> Poses:
        """Map the coordinates by ``x' = x * sx + ox``, ``y' = y * sy + oy``.

        For a network of stride s whose input was the image resized by a
        factor f and padded by ``(px, py)``: ``scale = s / f``, ``offset =
        (-px / f, -py / f)``. mmpose 1.x's restore is ``scale = input_scale /
        heatmap_size`` and ``offset = input_center - input_scale / 2``.

        Parameters
        ----------
        scale : float or (float, float)
            ``s`` or ``(sx, sy)``.
        offset : float or (float, float), default 0.0
            ``o`` or ``(ox, oy)``, in output units.

        Returns
        -------
        Poses
            New poses with float64 keypoints; missing joints stay NaN.

        Raises
        ------
        ValueError
            If ``scale`` or ``offset`` has the wrong length or is not finite.

        Examples
        --------
        >>> import numpy as np
        >>> from associative_embedding import Poses
        >>> p = Poses(np.array([[[1.5, 2.5, 0.9]]]), np.array([0.9]), np.zeros((1, 1)))
        >>> p.rescale(4.0, (1.0, -1.0)).keypoints.tolist()
        [[[7.0, 9.0, 0.9]]]
        """
        s = _pair(scale, "scale")
        o = _pair(offset, "offset")
        kp = self.keypoints.astype(np.float64, copy=True)
        kp[..., 0] = kp[..., 0] * s[0] + o[0]
        kp[..., 1] = kp[..., 1] * s[1] + o[1]
        return Poses(kp, self.scores, self.tags)

    def refine_dark(self, heatmaps: Any, *, center_shift: float = 0.5, eps: float = 1e-10) -> Poses:
        """Move every joint to the peak of a quadratic fit of the log heatmap (DARK).

        Distribution-aware refinement (Zhang et al., "Distribution-Aware Coordinate
        Representation for Human Pose Estimation", CVPR 2020; mmpose's
        ``refine_keypoints_dark``): at the pixel ``(i, j)`` nearest to a joint, the
        log heatmap ``L = log(max(h, eps))`` is expanded to second order with central
        differences over the 3×3 neighbourhood, and the joint moves to the
        expansion's maximum, ``(j + center_shift, i + center_shift) - H⁻¹ ∇L``. For a
        Gaussian peak (a quadratic ``L``) this is its exact sub-pixel centre, where
        the quarter-pixel adjustment of :func:`decode` moves by ±0.25 px at most.
        Call it on poses decoded from the same ``heatmaps``, with or without
        ``adjust``: the pixel is recovered as the one whose centre is nearest.

        A joint keeps its position where the fit has no maximum (the Hessian is not
        negative definite), where the step would leave the 3×3 neighbourhood (a
        component above 1 px), on the map's border pixels, and where it is missing
        (NaN). Unlike mmpose's DARK-UDP, the maps are not blurred first.

        Parameters
        ----------
        heatmaps : ndarray or Tensor, shape (K, H, W)
            The heatmaps these poses were decoded from (float; any device), in the
            same heatmap pixels as the keypoints. Must be finite.
        center_shift : float, default 0.5
            Where pixel ``j``'s value sits, ``j + center_shift``, as in
            :class:`DecodeConfig`.
        eps : float, default 1e-10
            Floor of the heatmap values before the logarithm (> 0).

        Returns
        -------
        Poses
            New poses with float64 keypoints; scores, tags and missing joints kept.

        Raises
        ------
        TypeError
            If ``heatmaps`` is not a float ndarray or Tensor.
        ValueError
            If ``heatmaps`` is not (K, H, W) with the poses' K, or holds NaN/Inf,
            or ``eps`` is not positive.

        Examples
        --------
        >>> import numpy as np
        >>> from associative_embedding import Poses
        >>> yy, xx = np.mgrid[:9, :9] + 0.5
        >>> hm = np.exp(-((xx - 4.3) ** 2 + (yy - 5.9) ** 2) / 8)[None]   # peak (4.3, 5.9)
        >>> p = Poses(np.array([[[4.5, 5.5, 1.0]]]), np.ones(1), np.zeros((1, 1)))
        >>> np.round(p.refine_dark(hm).keypoints[0, 0, :2], 6).tolist()
        [4.3, 5.9]
        """
        check_float_array(heatmaps, "heatmaps")
        k = self.keypoints.shape[1]
        if heatmaps.ndim != 3 or heatmaps.shape[0] != k:
            raise ValueError(
                f"heatmaps must have shape (K, H, W) with K = {k} (the poses' joints), "
                f"got shape {shape_str(heatmaps.shape)}"
            )
        check_finite(heatmaps, "heatmaps")
        shift = check_number(center_shift, "center_shift")
        floor = check_number(eps, "eps", low=0.0, low_inclusive=False)
        hm = _to_numpy(heatmaps, np.dtype(np.float64))
        _, h, w = hm.shape
        kp = self.keypoints.astype(np.float64, copy=True)
        if kp.size == 0 or h < 3 or w < 3:
            return Poses(kp, self.scores, self.tags)
        log = np.log(np.maximum(hm, floor))
        x, y = kp[..., 0], kp[..., 1]
        known = np.isfinite(x) & np.isfinite(y)
        j = np.floor(np.where(known, x, 0.0) - shift + 0.5)
        i = np.floor(np.where(known, y, 0.0) - shift + 0.5)
        inner = known & (j >= 1) & (j <= w - 2) & (i >= 1) & (i <= h - 2)
        jj = np.clip(j, 1, w - 2).astype(np.int64)
        ii = np.clip(i, 1, h - 2).astype(np.int64)
        kk = np.broadcast_to(np.arange(k), jj.shape)

        def at(di: int, dj: int) -> np.ndarray:
            return log[kk, ii + di, jj + dj]

        c = at(0, 0)
        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 1) - 2.0 * c + at(0, -1)
        dyy = at(1, 0) - 2.0 * c + at(-1, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = dxx * dyy - dxy * dxy
        ok = inner & (det > 0) & (dxx < 0)
        safe = np.where(ok, det, 1.0)
        ox = -(dyy * dx - dxy * dy) / safe
        oy = -(dxx * dy - dxy * dx) / safe
        ok &= (np.abs(ox) <= 1.0) & (np.abs(oy) <= 1.0)
        kp[..., 0] = np.where(ok, jj + shift + ox, x)
        kp[..., 1] = np.where(ok, ii + shift + oy, y)
        return Poses(kp, self.scores, self.tags)


def _pair(value: Any, name: str) -> tuple[float, float]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.array([arr, arr])
    if arr.shape != (2,):
        raise ValueError(f"{name} must be a number or a pair (x, y), got shape {arr.shape}")
    check_finite(arr, name)
    return float(arr[0]), float(arr[1])


# --- input handling -------------------------------------------------------------------------
def _resolve_config(config: DecodeConfig | None, options: dict[str, Any]) -> DecodeConfig:
    if config is None:
        config = DecodeConfig()
    elif not isinstance(config, DecodeConfig):
        raise TypeError(f"config must be a DecodeConfig or None, got {type(config).__name__}")
    if options:
        names = {f.name for f in dataclasses.fields(DecodeConfig)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(
                f"decode() got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"valid options are the DecodeConfig fields: {', '.join(sorted(names))}"
            )
        config = dataclasses.replace(config, **options)
    return config


def _check_inputs(heatmaps: Any, tags: Any) -> tuple[tuple[int, ...], int]:
    """Validate kinds, dtypes, ranks and shapes; return ``(B, K, H, W)`` and D."""
    check_float_array(heatmaps, "heatmaps")
    check_float_array(tags, "tags")
    if is_tensor(heatmaps) != is_tensor(tags):
        raise TypeError(
            "heatmaps and tags must both be numpy arrays or both torch tensors, got "
            f"{type(heatmaps).__name__} and {type(tags).__name__}"
        )
    if is_tensor(heatmaps) and heatmaps.device != tags.device:
        raise ValueError(
            f"heatmaps and tags must be on one device, got {heatmaps.device} and {tags.device}"
        )
    check_layout(heatmaps, "heatmaps", ["BKHW"])
    layout = check_layout(tags, "tags", ["BKHW", "BKDHW"])
    b, k, h, w = (int(s) for s in heatmaps.shape)
    ts = tuple(int(s) for s in tags.shape)
    t_bkhw = ts if layout == "BKHW" else (ts[0], ts[1], ts[3], ts[4])
    if t_bkhw != (b, k, h, w):
        raise ValueError(
            f"tags must match heatmaps (B, K, H, W) = {shape_str((b, k, h, w))}, got tags of "
            f"shape {shape_str(ts)} (layout ({', '.join(layout)}))"
        )
    d = 1 if layout == "BKHW" else ts[2]
    if k < 1 or h < 1 or w < 1 or d < 1:
        raise ValueError(
            f"heatmaps and tags need K, H, W, D >= 1, got heatmaps {shape_str(heatmaps.shape)} "
            f"and tags {shape_str(ts)}"
        )
    _check_finite_fast(heatmaps, "heatmaps")
    _check_finite_fast(tags, "tags")
    return (b, k, h, w), d


def _check_finite_fast(x: Any, name: str) -> None:
    """Raise ValueError on NaN or infinity, cheaply: NaN and inf make the sum non-finite.

    Only when the sum is not finite (a bad value, or an overflow of huge finite
    values) are the values counted one by one.
    """
    if is_tensor(x):
        import torch

        if x.numel() == 0:
            return
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        if bool(torch.isfinite(x.detach().sum(dtype=acc))):
            return
    else:
        if x.size == 0:
            return
        acc = np.float32 if x.dtype == np.float16 else None
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(x, axis=None, dtype=acc)
        if np.isfinite(total):
            return
    check_finite(x, name)


def _work_dtype(*dtypes: Any) -> np.dtype:
    """float64 if any input is float64, else float32 (float16 and bfloat16 widen losslessly)."""
    for dt in dtypes:
        if str(dt) in ("float64", "torch.float64"):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def _to_numpy(x: Any, dtype: np.dtype) -> np.ndarray:
    if is_tensor(x):
        import torch

        t = x.detach()
        t = t.to(torch.float64 if dtype == np.float64 else torch.float32)
        return np.ascontiguousarray(t.cpu().numpy())
    arr = np.ascontiguousarray(x, dtype=dtype)
    if not arr.flags.writeable:  # one compiled variant: kernels take writeable arrays only
        arr = arr.copy()
    return arr


def _joint_order(config: DecodeConfig, k: int) -> np.ndarray:
    if config.joint_order is None:
        order = _COCO_ORDER if k == 17 else tuple(range(k))
    else:
        order = config.joint_order
        if len(order) != k:
            raise ValueError(
                f"joint_order must be a permutation of range(K) with K={k} (the heatmaps' "
                f"joint axis), got {len(order)} entries"
            )
    return np.asarray(order, dtype=np.int64)


def _params(
    config: DecodeConfig, h: int, w: int, dtype: np.dtype
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    from . import _kernels as kn

    m = min(config.max_people, h * w)
    ip = np.zeros(kn.IP_SIZE, np.int64)
    ip[kn.IP_NMS_KERNEL] = config.nms_kernel
    ip[kn.IP_MATCHING] = kn.MATCH_HUNGARIAN if config.matching == "hungarian" else kn.MATCH_GREEDY
    ip[kn.IP_USE_VALUE] = int(config.use_detection_value)
    ip[kn.IP_DISTANCE] = kn.DIST_L2 if config.tag_distance == "l2" else kn.DIST_RMS
    cap = config.max_people if config.match_people == "first" else -1
    if config.max_instances is not None:
        cap = config.max_instances if cap < 0 else min(cap, config.max_instances)
    ip[kn.IP_MATCH_CAP] = cap
    ip[kn.IP_IGNORE_TOO_MUCH] = int(config.ignore_too_much)
    ip[kn.IP_MAX_PEOPLE] = config.max_people
    ip[kn.IP_MAX_OUT] = -1 if config.max_instances is None else config.max_instances
    ip[kn.IP_ADJUST] = int(config.adjust)
    ip[kn.IP_ADJUST_RULE] = (
        kn.ADJUST_REFERENCE if config.adjust_rule == "reference" else kn.ADJUST_MMPOSE
    )
    refine_codes = {
        "higherhrnet": kn.REFINE_HIGHERHRNET,
        "pose-ae-train": kn.REFINE_POSE_AE,
        "mmpose": kn.REFINE_MMPOSE,
    }
    ip[kn.IP_REFINE] = refine_codes[config.refine_mode] if config.refine else kn.REFINE_OFF
    ip[kn.IP_BLOCK] = _REFINE_BLOCK
    fp = np.zeros(kn.FP_SIZE, np.float64)
    fp[kn.FP_DETECTION_THRESHOLD] = config.detection_threshold
    fp[kn.FP_TAG_THRESHOLD] = config.tag_threshold
    fp[kn.FP_CENTER_SHIFT] = config.center_shift
    mult = np.full(1, 100 if config.refine_mode == "mmpose" else 1, dtype=dtype)
    return m, ip, fp, mult


# --- threads --------------------------------------------------------------------------------
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _default_threads() -> int:
    try:
        import numba

        return max(1, int(numba.config.NUMBA_NUM_THREADS))
    except Exception:  # pragma: no cover - numba always importable here
        return max(1, os.cpu_count() or 1)


def _pool(n: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ae-decode")
            _POOLS[n] = pool
        return pool


def _run_chunks(fn: Any, n_items: int, n_threads: int) -> None:
    """Call ``fn(start, stop)`` on contiguous chunks of ``range(n_items)`` on ``n_threads``.

    Four chunks per thread, taken in order by the pool's workers, even out images
    of unequal cost; ``fn`` calls a ``nogil`` kernel, so the workers run in parallel.
    """
    n_threads = max(1, min(n_threads, n_items))
    if n_threads == 1:
        fn(0, n_items)
        return
    n_chunks = min(n_items, 4 * n_threads)
    bounds = np.linspace(0, n_items, n_chunks + 1).round().astype(int)
    pool = _pool(n_threads)
    futures = [pool.submit(fn, int(bounds[i]), int(bounds[i + 1])) for i in range(n_chunks)]
    for f in futures:
        f.result()


# --- decode ---------------------------------------------------------------------------------
def decode(
    heatmaps: Any,
    tags: Any,
    config: DecodeConfig | None = None,
    *,
    num_threads: int | None = None,
    **options: Any,
) -> list[Poses]:
    """Group joint detections into people by their tags, for a batch of images.

    For every image: non-maximum suppression of each heatmap by a max-pool
    window (every pixel equal to its window's maximum is a peak, plateaus
    included), the ``max_people`` strongest peaks above the detection
    threshold per joint type (ties by row-major index), their tags, then the
    joint types in ``joint_order``: the first one with candidates starts one
    person per candidate, every later one is matched to the people found so
    far (Hungarian or greedy, see :class:`DecodeConfig`); a candidate further
    than ``tag_threshold`` from its match starts a new person. Then the
    quarter-pixel adjustment, the person scores, and the recovery of missing
    joints from the full maps.

    Parameters
    ----------
    heatmaps : ndarray or Tensor, shape (B, K, H, W)
        Detection heatmaps, float (numpy float16/32/64, any torch float dtype,
        CPU or CUDA).
    tags : ndarray or Tensor, shape (B, K, H, W) or (B, K, D, H, W)
        Tag maps with D tag dimensions per joint (D = 1 in the first form; with
        flip testing the references stack D = 2). Same kind and device as
        ``heatmaps``.
    config : DecodeConfig, optional
        The options; defaults to ``DecodeConfig()``, HigherHRNet's COCO test
        settings.
    num_threads : int, optional
        Threads over the images of the batch; default numba's
        ``NUMBA_NUM_THREADS`` (the CPU count unless set in the environment).
    **options
        Any :class:`DecodeConfig` field, overriding ``config``.

    Returns
    -------
    list of Poses
        One per image, people sorted by score (descending; ties keep creation
        order). Coordinates are heatmap pixels, with pixel ``(row i, column
        j)`` at ``(j + center_shift, i + center_shift)``; missing joints have
        score 0 and NaN coordinates. Arrays are float64 if heatmaps or tags are
        float64, else float32.

    Raises
    ------
    TypeError
        If an input is not a float numpy array or torch tensor, inputs are of
        mixed kinds, an option is unknown or of the wrong type.
    ValueError
        If shapes are wrong or disagree, an input holds NaN or infinity, or an
        option is out of range (e.g. ``joint_order`` is not a permutation of
        ``range(K)``).

    See Also
    --------
    DecodeConfig : All options and the settings of each reference.
    Poses.transform, Poses.rescale : Heatmap to image coordinates.

    Notes
    -----
    Results equal the reference parsers' (HigherHRNet ``group.py`` with the
    ``munkres`` 1.1.4 solver) exactly, float rounding included, given the same
    candidates. Differences, by design: people are identified by integers, not
    by the float value of their first tag (the references merge two people
    whose first tags are bit-equal); peaks of equal value are ranked by
    row-major index (``torch.topk`` leaves that order unspecified); float64
    inputs stay float64 (HigherHRNet casts its result to float32); the
    reference tag of the missing-joint search is read at each matched joint's
    pixel (the references truncate the adjusted coordinate, which is the same
    pixel for every ``center_shift`` in ``[0.25, 0.75]``).

    Every candidate that does not match starts a person, so an image can hold
    up to ``K * max_people`` people; with ``match_people="first"`` only the
    first ``max_people`` receive further joints. Nothing is dropped unless
    ``max_instances`` is set.

    For CUDA tensors, NMS and top-k run on the GPU with torch; the candidates
    and, for the missing-joint search, the maps of the joint types some person
    misses are copied to the CPU once per batch.

    The images of a batch are decoded on a pool of ``num_threads`` threads
    calling compiled kernels that release the GIL. A numba ``prange`` loop over
    the same per-image kernel was measured as the alternative
    (``benchmarks/bench_decode.py``): no clear difference on the 2-core test
    machine, while the pool keeps every kernel in numba's on-disk cache, needs
    no threading layer and may be called from several threads at once.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> heat = np.zeros((1, 2, 8, 8), np.float32)
    >>> heat[0, 0, 2, 3] = heat[0, 1, 5, 3] = 1.0
    >>> tags = np.zeros((1, 2, 8, 8), np.float32)
    >>> (poses,) = ae.decode(heat, tags, refine=False)
    >>> len(poses), poses.keypoints[0, :, :2].tolist()
    (1, [[3.25, 2.25], [3.25, 5.25]])
    """
    config = _resolve_config(config, options)
    if num_threads is None:
        num_threads = _default_threads()
    else:
        num_threads = check_int(num_threads, "num_threads", low=1)
    (b, k, h, w), d = _check_inputs(heatmaps, tags)
    order = _joint_order(config, k)
    if is_tensor(heatmaps) and heatmaps.device.type == "cuda" and not _crowd_options(config):
        return _decode_torch(heatmaps, tags, config, order, d, num_threads)
    dtype = _work_dtype(heatmaps.dtype, tags.dtype)
    if b == 0:
        return []
    heat = _to_numpy(heatmaps, dtype)
    tag = _to_numpy(tags, dtype).reshape(b, k, d, h, w)
    return _decode_numpy(heat, tag, config, order, num_threads)


def _capacity(config: DecodeConfig, k: int, m: int) -> int:
    cap = k * m
    if config.max_instances is not None:
        cap = min(cap, config.max_instances)
    return max(cap, 1)


def _crowd_options(config: DecodeConfig) -> bool:
    """Whether any option beyond the references' is set (the ``_crowd`` kernels run)."""
    return (
        config.tag_cost != "rounded"
        or config.regroup > 0
        or config.refine_window is not None
        or config.refine_tag_gate
        or config.min_score != 0.0
        or config.pose_nms is not None
    )


def _crowd_params(config: DecodeConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
    from . import _crowd as cr

    cp = np.zeros(cr.CP_SIZE, np.float64)
    codes = {"rounded": cr.TAG_COST_ROUNDED, "tiebreak": cr.TAG_COST_TIEBREAK}
    cp[cr.CP_TAG_COST] = codes.get(config.tag_cost, cr.TAG_COST_EXACT)
    cp[cr.CP_REGROUP] = config.regroup
    cp[cr.CP_SPATIAL_WEIGHT] = config.spatial_weight
    cp[cr.CP_SPATIAL_GATE] = np.inf if config.spatial_gate is None else config.spatial_gate
    cp[cr.CP_REFINE_WINDOW] = -1.0 if config.refine_window is None else config.refine_window
    cp[cr.CP_REFINE_TAG_GATE] = float(config.refine_tag_gate)
    cp[cr.CP_CROWD_REFINE] = float(config.refine_window is not None or config.refine_tag_gate)
    cp[cr.CP_MIN_SCORE] = config.min_score
    cp[cr.CP_POSE_NMS] = -1.0 if config.pose_nms is None else config.pose_nms
    sigmas = cr.COCO_SIGMAS if k == 17 else np.full(k, cr.OTHER_SIGMA)
    return cp, np.ascontiguousarray(sigmas, dtype=np.float64)


def _decode_numpy(
    heat: np.ndarray, tag: np.ndarray, config: DecodeConfig, order: np.ndarray, num_threads: int
) -> list[Poses]:
    from . import _kernels as kn

    b, k, h, w = heat.shape
    d = tag.shape[2]
    m, ip, fp, mult = _params(config, h, w, heat.dtype)
    cap = _capacity(config, k, m)
    out_kp = np.empty((b, cap, k, 3), heat.dtype)
    out_score = np.empty((b, cap), heat.dtype)
    out_tag = np.empty((b, cap, d), heat.dtype)
    out_n = np.zeros(b, np.int64)
    crowd = _crowd_options(config)
    if crowd:
        from . import _crowd as cr

        cp, sigmas = _crowd_params(config, k)

    def run(start: int, stop: int) -> None:
        if crowd:
            cr.decode_range_crowd(
                heat, tag, order, m, ip, fp, cp, mult, sigmas, start, stop, out_kp, out_score,
                out_tag, out_n,
            )  # fmt: skip
            return
        kn.decode_range(
            heat, tag, order, m, ip, fp, mult, start, stop, out_kp, out_score, out_tag, out_n
        )

    _run_chunks(run, b, num_threads)
    return _collect(out_kp, out_score, out_tag, out_n)


def _collect(
    out_kp: np.ndarray, out_score: np.ndarray, out_tag: np.ndarray, out_n: np.ndarray
) -> list[Poses]:
    return [
        Poses(out_kp[i, :n].copy(), out_score[i, :n].copy(), out_tag[i, :n].copy())
        for i, n in enumerate(out_n.tolist())
    ]


# --- torch path -----------------------------------------------------------------------------
def _torch_candidates(heat: Any, tags: Any, m: int, threshold: float, kernel: int) -> tuple:
    """NMS, top-k and gathers with torch on the tensors' device.

    Same candidates, order included, as :func:`_kernels.find_candidates`:
    peaks (``max_pool2d == heat``) with value ``> threshold``, the ``m``
    strongest, ties by flat index. ``heat`` is ``(B, K, H, W)``, ``tags``
    ``(B, K, D, H, W)``, both of the work dtype. Returns tensors on the same
    device: values ``(B, K, m)``, flat indices ``(B, K, m)`` (int64), counts
    ``(B, K)``, tags ``(B, K, m, D)`` and neighbours ``(B, K, m, 4)`` (left,
    right, up, down, clipped).
    """
    import torch
    import torch.nn.functional as F

    b, k, h, w = heat.shape
    d = tags.shape[2]
    hw = h * w
    pooled = F.max_pool2d(heat, kernel, stride=1, padding=kernel // 2)
    keep = (pooled == heat) & (heat > threshold)
    flat = heat.reshape(b, k, hw)
    keep = keep.reshape(b, k, hw)
    neg_inf = torch.tensor(float("-inf"), dtype=heat.dtype, device=heat.device)
    masked = torch.where(keep, flat, neg_inf)
    top_vals, _ = torch.topk(masked, m, dim=2)
    kth = top_vals[..., m - 1 : m]  # the m-th largest value (-inf if fewer candidates)
    index = torch.arange(hw, device=heat.device, dtype=torch.int64).expand(b, k, hw)
    above = keep & (masked > kth)
    at_kth = keep & (masked == kth)
    # a key selecting every candidate above the m-th value and, among those equal to it,
    # the ones with the lowest flat index
    key = torch.where(above, torch.full_like(index, 2 * hw), torch.full_like(index, -1))
    key = torch.where(at_kth, hw - index, key)
    sel_key, sel_idx = torch.topk(key, m, dim=2)
    valid = sel_key >= 0
    sel_idx = torch.where(valid, sel_idx, torch.full_like(sel_idx, hw))
    sel_idx, _ = torch.sort(sel_idx, dim=2)  # ascending flat index, invalid last
    valid = sel_idx < hw
    safe_idx = torch.where(valid, sel_idx, torch.zeros_like(sel_idx))
    vals = torch.gather(flat, 2, safe_idx)
    vals = torch.where(valid, vals, neg_inf)
    vals, perm = torch.sort(vals, dim=2, descending=True, stable=True)
    idx = torch.gather(safe_idx, 2, perm)
    valid = torch.gather(valid, 2, perm)
    counts = valid.sum(dim=2)
    vals = torch.where(valid, vals, torch.zeros_like(vals))
    y = idx // w
    x = idx % w
    tag_flat = tags.reshape(b, k, d, hw)
    cand_tag = torch.gather(tag_flat, 3, idx[:, :, None, :].expand(b, k, d, m)).permute(0, 1, 3, 2)

    def at(yy: Any, xx: Any) -> Any:
        return torch.gather(flat, 2, yy * w + xx)

    nb = torch.stack(
        [
            at(y, (x - 1).clamp(min=0)),
            at(y, (x + 1).clamp(max=w - 1)),
            at((y - 1).clamp(min=0), x),
            at((y + 1).clamp(max=h - 1), x),
        ],
        dim=3,
    )
    return vals, idx, counts, cand_tag, nb


def _decode_torch(
    heatmaps: Any, tags: Any, config: DecodeConfig, order: np.ndarray, d: int, num_threads: int
) -> list[Poses]:
    """Decode tensors: candidates with torch on their device, grouping and refine on the CPU."""
    import torch

    from . import _kernels as kn

    b, k, h, w = (int(s) for s in heatmaps.shape)
    dtype = _work_dtype(heatmaps.dtype, tags.dtype)
    if b == 0:
        return []
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    with torch.no_grad():
        heat_t = heatmaps.detach().to(tdt).contiguous()
        tags_t = tags.detach().to(tdt).reshape(b, k, d, h, w).contiguous()
        m, ip, fp, mult = _params(config, h, w, dtype)
        cands = _torch_candidates(heat_t, tags_t, m, config.detection_threshold, config.nms_kernel)
        vals, idx, counts, cand_tag, nb = (
            np.ascontiguousarray(t.cpu().numpy()) for t in cands
        )  # one transfer of the candidates
    counts = counts.astype(np.int64)
    idx = idx.astype(np.int64)
    cap = _capacity(config, k, m)
    out_kp = np.empty((b, cap, k, 3), dtype)
    out_score = np.empty((b, cap), dtype)
    out_tag = np.empty((b, cap, d), dtype)
    out_ref = np.empty((b, cap, d), dtype)
    out_det = np.zeros((b, cap, k), np.uint8)
    out_n = np.zeros(b, np.int64)

    def group(start: int, stop: int) -> None:
        kn.group_range(
            vals, idx, counts, cand_tag, nb, h, w, order, ip, fp, start, stop,
            out_kp, out_score, out_tag, out_ref, out_det, out_n,
        )  # fmt: skip

    _run_chunks(group, b, num_threads)
    if config.refine:
        # joint types some person misses: only their maps cross to the CPU, in one copy
        need = np.zeros((b, k), bool)
        for i, n in enumerate(out_n.tolist()):
            need[i] = (out_det[i, :n] == 0).any(axis=0)
        bi, ki = np.nonzero(need)
        slot = np.full((b, k), -1, np.int64)
        slot[bi, ki] = np.arange(bi.size)
        if bi.size:
            with torch.no_grad():
                sel_b = torch.as_tensor(bi, device=heat_t.device)
                sel_k = torch.as_tensor(ki, device=heat_t.device)
                heat_sel = np.ascontiguousarray(heat_t[sel_b, sel_k].cpu().numpy())
                tags_sel = np.ascontiguousarray(tags_t[sel_b, sel_k].cpu().numpy())
        else:
            heat_sel = np.zeros((1, h, w), dtype)
            tags_sel = np.zeros((1, d, h, w), dtype)

        def refine(start: int, stop: int) -> None:
            kn.refine_range(
                heat_sel, tags_sel, slot, out_n, ip, fp, mult, idx, counts, start, stop,
                out_kp, out_ref, out_det,
            )  # fmt: skip

        _run_chunks(refine, b, num_threads)
    return _collect(out_kp, out_score, out_tag, out_n)


# --- warm-up --------------------------------------------------------------------------------
def warmup() -> None:
    """Compile (or load from numba's cache) every decoder kernel.

    Runs :func:`decode` on tiny float32 and float64 maps, through the
    whole-image kernels and the candidate-grouping and refine kernels of the
    tensor path, so that the first real call does not pay for compilation.

    Returns
    -------
    None
        Nothing; the kernels are compiled as a side effect.

    Examples
    --------
    >>> import associative_embedding as ae
    >>> ae.warmup()
    """
    from . import _kernels as kn

    for dt in (np.float32, np.float64):
        heat = np.zeros((1, 2, 4, 4), dt)
        heat[0, :, 1, 1] = 1.0
        tag = np.zeros((1, 2, 1, 4, 4), dt)
        config = DecodeConfig()
        order = np.arange(2, dtype=np.int64)
        _decode_numpy(heat, tag, config, order, 1)
        _decode_numpy(heat, tag, DecodeConfig.preset("crowd"), order, 1)
        m, ip, fp, mult = _params(config, 4, 4, np.dtype(dt))
        vals = np.zeros((1, 2, m), dt)
        idx = np.zeros((1, 2, m), np.int64)
        cnt = np.zeros((1, 2), np.int64)
        ctag = np.zeros((1, 2, m, 1), dt)
        nb = np.zeros((1, 2, m, 4), dt)
        cap = 2 * m
        kp = np.empty((1, cap, 2, 3), dt)
        sc = np.empty((1, cap), dt)
        tg = np.empty((1, cap, 1), dt)
        ref = np.empty((1, cap, 1), dt)
        det = np.zeros((1, cap, 2), np.uint8)
        n = np.zeros(1, np.int64)
        kn.group_range(vals, idx, cnt, ctag, nb, 4, 4, order, ip, fp, 0, 1, kp, sc, tg, ref, det, n)
        slot = np.zeros((1, 2), np.int64)
        kn.refine_range(heat[0], tag[0], slot, n, ip, fp, mult, idx, cnt, 0, 1, kp, ref, det)
