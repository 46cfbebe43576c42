"""The decoder's options: :class:`DecodeConfig` and its presets.

Every option names the reference implementation it follows. The defaults are
the best grouping this library measures (the ``"crowd"`` grouping, see the
"Grouping modes" page); :meth:`DecodeConfig.preset` returns the exact settings
of each reference (``"higherhrnet"`` was the default before 0.1).
:func:`~associative_embedding.decode` takes a config or its fields as keywords.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._validation import check_choice, check_int, check_number

__all__ = ["DecodeConfig"]


# HigherHRNet's COCO test settings, every field: the "higherhrnet" preset, and the base the
# other references' presets change
REFERENCE: dict[str, Any] = {
    "max_people": 30,
    "detection_threshold": 0.1,
    "tag_threshold": 1.0,
    "nms_kernel": 5,
    "matching": "hungarian",
    "use_detection_value": True,
    "tag_distance": "l2",
    "joint_order": None,
    "adjust": True,
    "adjust_rule": "reference",
    "center_shift": 0.5,
    "refine": True,
    "refine_mode": "higherhrnet",
    "match_people": "first",
    "ignore_too_much": False,
    "max_instances": None,
    "max_instances_mode": "final",
    "tag_cost": "rounded",
    "regroup": 0,
    "spatial_weight": 0.0,
    "spatial_gate": None,
    "spatial_limbs": None,
    "refine_window": None,
    "refine_tag_gate": False,
    "refine_exclusive": False,
    "min_score": 0.0,
    "pose_nms": None,
}

PRESETS: dict[str, dict[str, Any]] = {
    "higherhrnet": REFERENCE,
    "pose-ae-train": {
        **REFERENCE,
        "nms_kernel": 3,
        "tag_distance": "rms",
        "ignore_too_much": True,
        "refine_mode": "pose-ae-train",
    },
    "mmpose-0.x": {**REFERENCE, "match_people": "all"},
    "mmpose-1.x": {
        **REFERENCE,
        "match_people": "all",
        "max_instances": 30,
        "adjust_rule": "mmpose",
        "refine_mode": "mmpose",
    },
    "crowd": {},  # the defaults: the library's best grouping
}


def _check_limbs(limbs: Any) -> str | tuple[tuple[int, int], ...] | None:
    """Validate ``spatial_limbs``: None, "auto", a Skeleton or pairs of joint types."""
    if limbs is None or (isinstance(limbs, str) and limbs == "auto"):
        return limbs
    if isinstance(limbs, str):
        raise ValueError(
            f"spatial_limbs must be 'auto', None or pairs of joint types, got {limbs!r}"
        )
    edges = getattr(limbs, "edges", limbs)  # a Skeleton
    if isinstance(edges, np.ndarray):
        edges = edges.tolist()
    if not isinstance(edges, Sequence):
        raise TypeError(
            "spatial_limbs must be 'auto', None, a Skeleton or a sequence of (int, int) pairs, "
            f"got {type(limbs).__name__}"
        )
    pairs = []
    for pair in edges:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (Sequence, np.ndarray)):
            raise TypeError(f"spatial_limbs must hold (int, int) pairs, got {pair!r}")
        if len(pair) != 2:
            raise ValueError(f"spatial_limbs must hold (int, int) pairs, got {tuple(pair)!r}")
        a, b = (check_int(v, "spatial_limbs[i]", low=0) for v in pair)
        if a == b:
            raise ValueError(f"spatial_limbs must link two different joint types, got {(a, b)}")
        pairs.append((a, b))
    return tuple(pairs)


@dataclass(frozen=True)
class DecodeConfig:
    """Options of :func:`decode`; the defaults are the library's best grouping.

    Every option names the reference implementation it follows (the upstream
    files: pose-ae-train ``utils/group.py`` and ``test.py``; HigherHRNet
    ``lib/core/group.py`` and ``w32_512_adam_lr1e-3.yaml``; mmpose 1.x
    ``codecs/associative_embedding.py``). :meth:`preset` returns the settings
    that reproduce each of them exactly; the defaults are HigherHRNet's COCO
    test settings with the grouping this library measures best on crowded
    scenes (``tag_cost`` to ``pose_nms`` below, the ``"crowd"`` preset), the
    ``"symmetric"`` quarter-pixel rule and ``refine_exclusive``. Pick a
    reference's preset to reproduce a model's published numbers; keep the
    defaults for the best results.

    Parameters
    ----------
    max_people : int, default 30
        Candidates kept per joint type after NMS (the references' top-k,
        ``MAX_NUM_PEOPLE`` / ``decode_topk``), and the number of people taking
        part in matching when ``match_people="first"``. Clipped to ``H * W``.
        It does not limit the people returned (every unmatched candidate
        starts a person): ``max_instances`` does.
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
    adjust_rule : {"symmetric", "reference", "mmpose"}, default "symmetric"
        ``"symmetric"``: toward the larger neighbour, no move on ties,
        neighbours clipped at the border, so that a symmetric peak (a Gaussian
        target of :func:`~associative_embedding.render_heatmaps`) decodes at
        its pixel's centre, unbiased. ``"reference"``: -0.25 on ties, which
        moves symmetric peaks a quarter pixel up and left (pose-ae-train,
        HigherHRNet, mmpose 0.x). ``"mmpose"``: no move on ties,
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
        Keep only the first ``max_instances`` people in creation order (mmpose
        1.x ``decode_max_instances``, which is 30 in its COCO config). ``None``:
        keep everyone.
    max_instances_mode : {"final", "matching"}, default "final"
        When ``max_instances`` applies. ``"final"``: every person takes part in
        matching and the list is cut at the end (mmpose >= 1.2, PR #2752, e.g.
        1.3.2). ``"matching"``: only the first ``max_instances`` people receive
        further joints, as well (mmpose 1.0 and 1.1).
    tag_cost : {"rounded", "tiebreak", "exact"}, default "tiebreak"
        Hungarian cost of tag distance ``d`` and detection value ``v``:
        ``round(d) * 100 - v`` (all references), ``(round(d) * 100 + d) - v``
        (ties of the rounded distance broken by the distance) or ``d * 100 -
        v`` (the distance itself). ``v`` is left out when
        ``use_detection_value=False``. Only ``"rounded"`` is a reference
        setting; see :doc:`/grouping_modes`.
    regroup : int, default 3
        Rounds of re-assignment after the first pass: every candidate is
        matched again, per joint type, to the people of the previous round
        (their final mean tags), until nothing changes. 0: off (references).
    spatial_weight : float, default 1.5
        In the re-assignment rounds, add ``spatial_weight * s`` to the tag
        distance in the cost, ``s`` being the candidate's distance to the
        person's nearest joint of another type (of a linked type with
        ``spatial_limbs``) divided by the person's size (heatmap pixels over
        heatmap pixels).
    spatial_gate : float or None, default 0.6
        In the re-assignment rounds, a candidate joins a person only if ``s <
        spatial_gate``, and (with ``refine_mode`` ``"higherhrnet"`` or
        ``"pose-ae-train"``) the missing-joint search of a person only looks
        at pixels with ``s < spatial_gate``, ``s`` measured from its detected
        joints. ``None``: no gate.
    spatial_limbs : "auto", sequence of (int, int) or None, default "auto"
        Joint types linked by a limb. With limbs, ``s`` is the distance to the
        person's nearest joint linked to the candidate's type (the nearest
        joint of any other type when the person has none of them). ``"auto"``:
        COCO's limbs (:data:`~associative_embedding.COCO_KEYPOINTS` ``.edges``)
        when K = 17; for any other K the spatial term and gate are off (the
        nearest other joint of a skeleton of two corners is a whole person
        away): pass the skeleton's limbs to use them. A :class:`~associative_embedding.Skeleton`
        gives its edges. ``None``: any other joint type.
    refine_window : float or None, default 1.0
        Search a missing joint only inside the box of the person's detected
        joints widened on each side by ``refine_window`` times the person's
        size. ``None``: the whole map (references).
    refine_tag_gate : bool, default False
        Fill a missing joint only where the tag distance to the person is
        below ``tag_threshold`` (the references fill wherever the heat is > 0).
    refine_exclusive : bool, default True
        No returned person copies another's joints: after the pose NMS, a
        filled joint that lies on the slope of a peak another returned person
        holds (followed uphill to the peak: detected there by anyone, or
        filled there by a person of higher score) is removed. The references
        fill a weak spurious detection's "person" with the real people's
        joints, whole skeletons of them; the pose NMS still sees the fills, so
        a person split in two is merged back as before. Needs ``refine_mode``
        ``"higherhrnet"`` or ``"pose-ae-train"``.
    min_score : float, default 0.02
        Drop people whose score is not above ``min_score`` (after the
        missing-joint search, which does not change scores). Only 0.0 is a
        reference setting, and it keeps everyone.
    pose_nms : float or None, default 0.9
        OKS threshold in [0, 1] of a greedy pose non-maximum suppression in
        score order, after the missing-joint search: a person whose OKS with a
        kept one exceeds it is dropped. ``None``: off (references).

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

    - HigherHRNet (``w32_512`` yaml, ``FLIP_TEST``, ``ADJUST``, ``REFINE``):
      ``preset("higherhrnet")``, every option after ``max_instances_mode`` off
      and ``adjust_rule="reference"``. With ``ADJUST: False`` and ``REFINE:
      False`` it reports integer pixels: use ``adjust=False,
      center_shift=0.0``. With ``ADJUST: False`` and ``REFINE: True`` it
      mixes integer detected joints with refined joints at ``+0.5 ± 0.25``,
      which no option reproduces (here both follow ``adjust`` and
      ``center_shift``).
    - pose-ae-train ``test.py``: ``nms_kernel=3, tag_distance="rms",
      ignore_too_much=True, refine_mode="pose-ae-train"``. Its ``refine`` clips
      the lower neighbour's row index to K - 1 (it uses ``det.shape[0]``); here
      the row is clipped to H - 1, so refined joints in rows >= K - 1 can differ
      from it by 0.5 px in y.
    - mmpose 0.x (``hrnet_w32_coco_512x512``): HigherHRNet's with
      ``match_people="all"``.
    - mmpose 1.x (``ae_hrnet-w32`` config, mmpose 1.3.2): ``match_people="all",
      max_instances=30, adjust_rule="mmpose", refine_mode="mmpose"``; mmpose
      1.3.2 computes its matching distances in float64, as here. For mmpose 1.0
      and 1.1 add ``max_instances_mode="matching"``.
    - ``DecodeConfig.preset("crowd")`` is no reference: the defaults,
      HigherHRNet's settings with the grouping measured best in crowds
      (:doc:`/grouping_modes`). The options after ``max_instances_mode`` are
      this library's; set as in ``preset("higherhrnet")`` (off), the results
      equal the references'.

    Examples
    --------
    >>> from associative_embedding import DecodeConfig
    >>> cfg = DecodeConfig(detection_threshold=0.2)
    >>> cfg.max_people, cfg.detection_threshold, cfg.tag_cost
    (30, 0.2, 'tiebreak')
    >>> DecodeConfig.preset("higherhrnet").tag_cost
    'rounded'
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
    adjust_rule: Literal["symmetric", "reference", "mmpose"] = "symmetric"
    center_shift: float = 0.5
    refine: bool = True
    refine_mode: Literal["higherhrnet", "pose-ae-train", "mmpose"] = "higherhrnet"
    match_people: Literal["first", "all"] = "first"
    ignore_too_much: bool = False
    max_instances: int | None = None
    max_instances_mode: Literal["final", "matching"] = "final"
    tag_cost: Literal["rounded", "tiebreak", "exact"] = "tiebreak"
    regroup: int = 3
    spatial_weight: float = 1.5
    spatial_gate: float | None = 0.6
    spatial_limbs: str | tuple[tuple[int, int], ...] | None = "auto"
    refine_window: float | None = 1.0
    refine_tag_gate: bool = False
    refine_exclusive: bool = True
    min_score: float = 0.02
    pose_nms: float | None = 0.9

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
        check_choice(self.adjust_rule, "adjust_rule", ("symmetric", "reference", "mmpose"))
        check_choice(self.refine_mode, "refine_mode", ("higherhrnet", "pose-ae-train", "mmpose"))
        check_choice(self.match_people, "match_people", ("first", "all"))
        check_choice(self.max_instances_mode, "max_instances_mode", ("final", "matching"))
        check_choice(self.tag_cost, "tag_cost", ("rounded", "tiebreak", "exact"))
        if self.tag_cost != "rounded" and self.matching != "hungarian":
            raise ValueError(
                f"tag_cost={self.tag_cost!r} needs matching='hungarian', got {self.matching!r}; "
                "for the references' greedy matching start from their settings: "
                "DecodeConfig.preset('higherhrnet', matching='greedy')"
            )
        set_(self, "regroup", check_int(self.regroup, "regroup", low=0))
        set_(self, "spatial_weight", check_number(self.spatial_weight, "spatial_weight", low=0.0))
        set_(self, "min_score", check_number(self.min_score, "min_score"))
        set_(self, "spatial_limbs", _check_limbs(self.spatial_limbs))
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
            "refine_exclusive",
        ):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
            set_(self, name, bool(value))
        crowd_search = self.refine_window is not None or self.refine_tag_gate
        if (crowd_search or self.refine_exclusive) and self.refine_mode not in (
            "higherhrnet",
            "pose-ae-train",
        ):
            raise ValueError(
                "refine_window, refine_tag_gate and refine_exclusive need refine_mode "
                f"'higherhrnet' or 'pose-ae-train', got {self.refine_mode!r}; "
                "DecodeConfig.preset('mmpose-1.x') sets all three off"
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
            The reference, with its COCO test settings, every option set
            (HigherHRNet
            ``experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml``,
            pose-ae-train ``test.py``, mmpose 0.x ``hrnet_w32_coco_512x512.py``,
            mmpose 1.x ``ae_hrnet-w32_8xb24-300e_coco-512x512.py``; see the
            "Migrating" page); ``"crowd"``: the defaults, this library's
            best grouping.
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
        check_choice(name, "name", tuple(PRESETS))
        return cls(**{**PRESETS[name], **changes})
