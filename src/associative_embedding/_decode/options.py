"""The one boundary between :class:`~associative_embedding.DecodeConfig` and the kernels.

:func:`build` turns a config, the maps' size and the work dtype into the
:class:`DecodeOptions` record every kernel reads; nothing else reads a config
field on the decoder's path. :data:`TABLE` lists, for every ``DecodeConfig``
field, the record fields it sets and whether it selects the crowd kernels:
:func:`uses_crowd` (and :func:`kernel_path`) is derived from it, and
``tests/test_decode_options.py`` fails when a field is missing from it or sets
a record field it does not list.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import numpy as np

from ..config import DecodeConfig
from .crowd import OTHER_SIGMA, CrowdOptions
from .matching import (
    MATCH_GREEDY,
    MATCH_HUNGARIAN,
    TAG_COST_EXACT,
    TAG_COST_ROUNDED,
    TAG_COST_TIEBREAK,
    GroupOptions,
)
from .missing import (
    REFINE_HIGHERHRNET,
    REFINE_MMPOSE,
    REFINE_OFF,
    REFINE_POSE_AE,
    RefineOptions,
)
from .peaks import TILE
from .people import ADJUST_MMPOSE, ADJUST_REFERENCE, ADJUST_SYMMETRIC

COCO_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


class DecodeOptions(NamedTuple):
    """Every option of one decode call, as the kernels read them.

    ``detection_threshold`` (a scalar of the work dtype, the largest not above
    the configured value: see :func:`threshold_for`), ``nms_kernel``,
    ``max_candidates`` (M, the top-k per joint type), and the
    ``matching.GroupOptions``, ``missing.RefineOptions`` and
    ``crowd.CrowdOptions`` records. The references' kernels do not
    read ``crowd``, and receive it as None (:func:`kernel_record`).
    """

    detection_threshold: float
    nms_kernel: int
    max_candidates: int
    group: GroupOptions
    refine: RefineOptions
    crowd: CrowdOptions | None


class Field(NamedTuple):
    """How one ``DecodeConfig`` field reaches the kernels.

    ``targets``: the record fields it sets (``"group.match_cap"``; ``"order"``
    and ``"capacity"`` are the joint order and the people allocated per image).
    ``crowd_off``: for an option beyond the references, the value at which the
    references' kernels run (any other selects the crowd kernels); :data:`BOTH`
    for the options every path reads; :data:`WITH_REGROUP` for the crowd
    options that act only through ``regroup`` and select nothing themselves.
    """

    targets: tuple[str, ...]
    crowd_off: Any


BOTH = object()
WITH_REGROUP = object()

TABLE: dict[str, Field] = {
    "max_people": Field(
        ("max_candidates", "group.max_people", "group.match_cap", "capacity"), BOTH
    ),
    "detection_threshold": Field(("detection_threshold", "refine.top_min"), BOTH),
    "tag_threshold": Field(("group.tag_threshold",), BOTH),
    "nms_kernel": Field(("nms_kernel",), BOTH),
    "matching": Field(("group.matching",), BOTH),
    "use_detection_value": Field(("group.use_value",), BOTH),
    "tag_distance": Field(("group.use_rms",), BOTH),
    "joint_order": Field(("order",), BOTH),
    "adjust": Field(("group.adjust", "refine.adjust"), BOTH),
    "adjust_rule": Field(("group.adjust_rule", "refine.adjust_rule"), BOTH),
    "center_shift": Field(("group.center_shift", "refine.center_shift"), BOTH),
    "refine": Field(("refine.mode",), BOTH),
    "refine_mode": Field(("refine.mode", "refine.mult", "crowd.crowd_refine"), BOTH),
    "match_people": Field(("group.match_cap",), BOTH),
    "ignore_too_much": Field(("group.ignore_too_much",), BOTH),
    "max_instances": Field(("group.max_out", "group.match_cap", "capacity"), BOTH),
    "max_instances_mode": Field(("group.match_cap",), BOTH),
    "tag_cost": Field(("crowd.tag_cost",), "rounded"),
    "regroup": Field(("crowd.regroup",), 0),
    "spatial_weight": Field(("crowd.spatial_weight",), WITH_REGROUP),
    "spatial_gate": Field(("crowd.spatial_gate", "crowd.crowd_refine"), None),
    "spatial_limbs": Field(
        ("crowd.limbs", "crowd.spatial_weight", "crowd.spatial_gate", "crowd.crowd_refine"),
        WITH_REGROUP,
    ),
    "refine_window": Field(("crowd.refine_window", "crowd.crowd_refine"), None),
    "refine_tag_gate": Field(("crowd.refine_tag_gate", "crowd.crowd_refine"), False),
    "refine_exclusive": Field(("crowd.refine_exclusive", "crowd.crowd_refine"), False),
    "min_score": Field(("crowd.min_score",), 0.0),
    "pose_nms": Field(("crowd.pose_nms",), None),
}

_SELECTORS = tuple(
    (name, f.crowd_off) for name, f in TABLE.items() if f.crowd_off not in (BOTH, WITH_REGROUP)
)


def uses_crowd(config: DecodeConfig) -> bool:
    """Whether an option beyond the references' is set (then the crowd kernels run)."""
    return any(getattr(config, name) != off for name, off in _SELECTORS)


KERNEL_PATHS = ("references", "crowd", "crowd-whole-map")


def kernel_path(config: DecodeConfig, opts: DecodeOptions) -> str:
    """Return which batch kernel decodes ``config``, one of :data:`KERNEL_PATHS`.

    ``"references"`` unless :func:`uses_crowd`; then ``"crowd"``, unless the
    missing-joint search is on and is the references' whole-map search
    (``opts.crowd.crowd_refine`` off, from :func:`build`): ``"crowd-whole-map"``.
    The crowd kernels compile only the search they run.
    """
    if not uses_crowd(config):
        return "references"
    if opts.refine.mode != REFINE_OFF and not opts.crowd.crowd_refine:
        return "crowd-whole-map"
    return "crowd"


def kernel_record(opts: DecodeOptions, path: str) -> DecodeOptions:
    """Return the record the batch kernel of ``path`` (:data:`KERNEL_PATHS`) is called with.

    ``opts`` itself, but for the references' kernels, which never read the
    crowd record: they get None in its place. Numba unboxes every field of the
    record at each kernel call, and the crowd record's cost about 1 µs.
    """
    return opts._replace(crowd=None) if path == "references" else opts


def joint_order(config: DecodeConfig, k: int) -> np.ndarray:
    """Return the order the joint types are matched in, int64 ``(K,)``, checked against K."""
    if config.joint_order is None:
        order = COCO_ORDER if k == 17 else tuple(range(k))
    else:
        order = config.joint_order
        if len(order) != k:
            raise ValueError(
                f"joint_order must be a permutation of range(K) with K={k} (the heatmaps' "
                f"joint axis), got {len(order)} entries"
            )
    return np.asarray(order, dtype=np.int64)


def capacity(config: DecodeConfig, k: int, m: int) -> int:
    """People allocated per image: every candidate may start one, cut to ``max_instances``."""
    cap = k * m
    if config.max_instances is not None:
        cap = min(cap, config.max_instances)
    return max(cap, 1)


def threshold_for(value: float, dtype: np.dtype) -> np.floating:
    """Return the largest number of the work ``dtype`` not above ``value``.

    For every ``v`` of ``dtype``, ``v > result`` exactly when ``v > value`` in
    float64, the references' comparison (HigherHRNet and mmpose test the
    values in float64 rows, next to int64 locations): a float32 pixel equal to
    ``float32(0.1)``, just above 0.1, is a detection. The kernels then compare
    float32 maps in float32, at twice the vector width of float64.
    """
    with np.errstate(over="ignore"):  # beyond float32's range: an infinity
        t = dtype.type(value)
    if float(t) > value:  # rounded up to the nearest float32: take the one below
        t = np.nextafter(t, dtype.type(-np.inf))
    return t


def build(config: DecodeConfig, k: int, h: int, w: int, dtype: np.dtype) -> DecodeOptions:
    """Return the :class:`DecodeOptions` for K maps of ``h x w`` pixels in the work ``dtype``.

    Cached: one-image calls with the same settings skip rebuilding it.
    """
    try:
        return _cached_build(config, k, h, w, np.dtype(dtype), TILE)
    except TypeError:  # a config holding an unhashable value
        return _build(config, k, h, w, np.dtype(dtype), TILE)


@functools.lru_cache(maxsize=32)
def _cached_build(
    config: DecodeConfig, k: int, h: int, w: int, dtype: np.dtype, tile: int
) -> DecodeOptions:
    return _build(config, k, h, w, dtype, tile)


def _build(
    config: DecodeConfig, k: int, h: int, w: int, dtype: np.dtype, tile: int
) -> DecodeOptions:
    return DecodeOptions(
        detection_threshold=threshold_for(config.detection_threshold, dtype),
        nms_kernel=config.nms_kernel,
        max_candidates=min(config.max_people, h * w),
        group=_group(config),
        refine=_refine(config, dtype, tile),
        crowd=_crowd(config, k),
    )


_ADJUST_RULES = {
    "reference": ADJUST_REFERENCE,
    "mmpose": ADJUST_MMPOSE,
    "symmetric": ADJUST_SYMMETRIC,
}


def _adjust_rule(config: DecodeConfig) -> int:
    return _ADJUST_RULES[config.adjust_rule]


def _group(config: DecodeConfig) -> GroupOptions:
    match_cap = config.max_people if config.match_people == "first" else -1
    if config.max_instances is not None and config.max_instances_mode == "matching":
        match_cap = config.max_instances if match_cap < 0 else min(match_cap, config.max_instances)
    return GroupOptions(
        matching=MATCH_HUNGARIAN if config.matching == "hungarian" else MATCH_GREEDY,
        use_value=config.use_detection_value,
        use_rms=config.tag_distance == "rms",
        match_cap=match_cap,
        ignore_too_much=config.ignore_too_much,
        max_people=config.max_people,
        max_out=-1 if config.max_instances is None else config.max_instances,
        adjust=config.adjust,
        adjust_rule=_adjust_rule(config),
        tag_threshold=float(config.tag_threshold),
        center_shift=float(config.center_shift),
    )


_REFINE_MODES = {
    "higherhrnet": REFINE_HIGHERHRNET,
    "pose-ae-train": REFINE_POSE_AE,
    "mmpose": REFINE_MMPOSE,
}


def _refine(config: DecodeConfig, dtype: np.dtype, tile: int) -> RefineOptions:
    return RefineOptions(
        mode=_REFINE_MODES[config.refine_mode] if config.refine else REFINE_OFF,
        adjust=config.adjust,
        adjust_rule=_adjust_rule(config),
        block=tile,
        center_shift=float(config.center_shift),
        mult=dtype.type(100 if config.refine_mode == "mmpose" else 1),
        top_min=float(config.detection_threshold),
    )


def _limb_matrix(limbs: Any, k: int) -> np.ndarray:
    """``spatial_limbs`` as a (K, K) bool matrix of linked joint types."""
    from ..skeletons import COCO_KEYPOINTS

    if limbs == "auto":
        limbs = COCO_KEYPOINTS.edges if k == 17 else ()
    out = np.zeros((k, k), np.bool_)
    for a, b in limbs or ():
        if max(a, b) >= k:
            raise ValueError(
                f"spatial_limbs links joint types {(a, b)}, but the maps have K={k} joint types"
            )
        out[a, b] = out[b, a] = True
    return out


_TAG_COSTS = {"rounded": TAG_COST_ROUNDED, "tiebreak": TAG_COST_TIEBREAK, "exact": TAG_COST_EXACT}


def _crowd(config: DecodeConfig, k: int) -> CrowdOptions:
    from ..skeletons import COCO_KEYPOINTS

    sigmas = COCO_KEYPOINTS.sigmas if k == 17 else np.full(k, OTHER_SIGMA)
    # "auto" without a known skeleton (K != 17): no spatial term, whatever its weight and gate
    spatial = not (config.spatial_limbs == "auto" and k != 17)
    gate = config.spatial_gate if spatial else None
    return CrowdOptions(
        tag_cost=_TAG_COSTS[config.tag_cost],
        regroup=config.regroup,
        spatial_weight=float(config.spatial_weight) if spatial else 0.0,
        spatial_gate=np.inf if gate is None else float(gate),
        limbs=_limb_matrix(config.spatial_limbs, k),
        refine_window=-1.0 if config.refine_window is None else float(config.refine_window),
        refine_tag_gate=config.refine_tag_gate,
        refine_exclusive=config.refine_exclusive,
        crowd_refine=config.refine_window is not None
        or config.refine_tag_gate
        or config.refine_exclusive
        or (gate is not None and config.refine_mode != "mmpose"),
        min_score=float(config.min_score),
        pose_nms=-1.0 if config.pose_nms is None else float(config.pose_nms),
        sigmas=np.ascontiguousarray(sigmas, dtype=np.float64),
    )


@functools.cache
def default_config() -> DecodeConfig:
    """``DecodeConfig()``: frozen, so one instance serves every call."""
    return DecodeConfig()


def resolve(config: DecodeConfig | str | None, options: dict[str, Any]) -> DecodeConfig:
    """Return ``config`` (default ``DecodeConfig()``) with the call's ``options`` replaced.

    ``config`` may name a preset (``"mmpose-1.x"``: ``DecodeConfig.preset("mmpose-1.x")``).
    """
    if config is None:
        config = default_config()
    elif isinstance(config, str):
        config = DecodeConfig.preset(config)  # a preset's name; an unknown one raises
    elif not isinstance(config, DecodeConfig):
        raise TypeError(
            "config must be a DecodeConfig, a preset name (see DecodeConfig.preset) or None, "
            f"got {type(config).__name__}"
        )
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
