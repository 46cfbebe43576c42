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
import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from ._threads import default_threads, run_chunks
from ._validation import (
    check_finite,
    check_finite_fast,
    check_float_pair,
    check_int,
    check_layout,
    is_tensor,
    shape_str,
    to_numpy,
    work_dtype,
)
from .config import DecodeConfig
from .poses import Poses

if TYPE_CHECKING:
    from ._batch import DecodeOptions
    from ._grouping import People

__all__ = ["DecodeConfig", "Poses", "decode", "warmup"]

_COCO_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
_REFINE_BLOCK = 16  # side of the blocks the missing-joint search bounds and skips


# --- input handling -------------------------------------------------------------------------
@functools.cache
def _default_config() -> DecodeConfig:
    return DecodeConfig()  # frozen: one instance serves every call


def _resolve_config(config: DecodeConfig | None, options: dict[str, Any]) -> DecodeConfig:
    if config is None:
        config = _default_config()
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
    check_float_pair(heatmaps, "heatmaps", tags, "tags")
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
    return (b, k, h, w), d


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


def _options(config: DecodeConfig, h: int, w: int, dtype: np.dtype) -> DecodeOptions:
    """Build the kernels' option record for maps of ``h x w`` pixels in the work ``dtype``.

    Cached: one-image calls with the same settings skip rebuilding it.
    """
    try:
        return _cached_options(config, h, w, dtype, _REFINE_BLOCK)
    except TypeError:  # a config holding an unhashable value
        return _build_options(config, h, w, dtype, _REFINE_BLOCK)


@functools.lru_cache(maxsize=32)
def _cached_options(
    config: DecodeConfig, h: int, w: int, dtype: np.dtype, block: int
) -> DecodeOptions:
    return _build_options(config, h, w, dtype, block)


def _build_options(
    config: DecodeConfig, h: int, w: int, dtype: np.dtype, block: int
) -> DecodeOptions:
    from ._batch import DecodeOptions
    from ._grouping import ADJUST_MMPOSE, ADJUST_REFERENCE
    from ._matching import MATCH_GREEDY, MATCH_HUNGARIAN, GroupOptions
    from ._refine import (
        REFINE_HIGHERHRNET,
        REFINE_MMPOSE,
        REFINE_OFF,
        REFINE_POSE_AE,
        RefineOptions,
    )

    match_cap = config.max_people if config.match_people == "first" else -1
    if config.max_instances is not None and config.max_instances_mode == "matching":
        match_cap = config.max_instances if match_cap < 0 else min(match_cap, config.max_instances)
    adjust_rule = ADJUST_REFERENCE if config.adjust_rule == "reference" else ADJUST_MMPOSE
    group = GroupOptions(
        matching=MATCH_HUNGARIAN if config.matching == "hungarian" else MATCH_GREEDY,
        use_value=config.use_detection_value,
        use_rms=config.tag_distance == "rms",
        match_cap=match_cap,
        ignore_too_much=config.ignore_too_much,
        max_people=config.max_people,
        max_out=-1 if config.max_instances is None else config.max_instances,
        adjust=config.adjust,
        adjust_rule=adjust_rule,
        tag_threshold=float(config.tag_threshold),
        center_shift=float(config.center_shift),
    )
    refine_codes = {
        "higherhrnet": REFINE_HIGHERHRNET,
        "pose-ae-train": REFINE_POSE_AE,
        "mmpose": REFINE_MMPOSE,
    }
    refine = RefineOptions(
        mode=refine_codes[config.refine_mode] if config.refine else REFINE_OFF,
        adjust=config.adjust,
        adjust_rule=adjust_rule,
        block=block,
        center_shift=float(config.center_shift),
        mult=dtype.type(100 if config.refine_mode == "mmpose" else 1),
        top_min=float(config.detection_threshold),
    )
    return DecodeOptions(
        detection_threshold=_threshold_for(config.detection_threshold, dtype),
        nms_kernel=config.nms_kernel,
        max_candidates=min(config.max_people, h * w),
        group=group,
        refine=refine,
    )


def _threshold_for(value: float, dtype: np.dtype) -> np.floating:
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
    ``max_instances``, ``min_score`` or ``pose_nms`` is set. The options after
    ``max_instances_mode`` (``DecodeConfig.preset("crowd")``) change the
    grouping beyond the references: :doc:`/grouping_modes`.

    For CUDA tensors, NMS and top-k run on the GPU with torch; the candidates
    and, for the missing-joint search, the maps of the joint types some person
    misses are copied to the CPU once per batch. With any of the crowd options
    set, the maps are copied to the CPU and decoded there.

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
    if not options and type(heatmaps) is np.ndarray and type(tags) is np.ndarray:
        plan = _numpy_plan(heatmaps, tags, config, num_threads)
        if plan is not None:
            return plan.run(heatmaps, tags)
    config = _resolve_config(config, options)
    if num_threads is None:
        num_threads = default_threads()
    else:
        num_threads = check_int(num_threads, "num_threads", low=1)
    (b, k, h, w), d = _check_inputs(heatmaps, tags)
    order = _joint_order(config, k)
    cuda = is_tensor(heatmaps) and heatmaps.device.type == "cuda"
    if cuda or _uses_crowd(config):
        # these paths do not go through decode_range, whose first pass checks the maps
        check_finite_fast(heatmaps, "heatmaps")
        check_finite_fast(tags, "tags")
    if cuda and not _uses_crowd(config):
        from ._torch_path import decode_tensors

        return decode_tensors(heatmaps, tags, config, order, d, num_threads)
    dtype = work_dtype(heatmaps.dtype, tags.dtype)
    if b == 0:
        return []
    heat = to_numpy(heatmaps, dtype)
    tag = to_numpy(tags, dtype).reshape(b, k, d, h, w)
    return _decode_numpy(heat, tag, config, order, num_threads)


def _capacity(config: DecodeConfig, k: int, m: int) -> int:
    cap = k * m
    if config.max_instances is not None:
        cap = min(cap, config.max_instances)
    return max(cap, 1)


def _uses_crowd(config: DecodeConfig) -> bool:
    """Whether an option beyond the references' is set (then the ``_crowd`` kernels run)."""
    return (
        config.tag_cost != "rounded"
        or config.regroup > 0
        or config.refine_window is not None
        or config.refine_tag_gate
        or config.spatial_gate is not None
        or config.min_score != 0.0
        or config.pose_nms is not None
    )


def _limb_matrix(limbs: Any, k: int) -> np.ndarray:
    """``spatial_limbs`` as a (K, K) bool matrix of linked joint types."""
    from .skeletons import COCO_KEYPOINTS

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


def _crowd_options(config: DecodeConfig, k: int) -> Any:
    """Build the ``_crowd`` kernels' option record for K joint types."""
    from ._crowd import OTHER_SIGMA
    from ._crowd_batch import CrowdOptions
    from ._matching import TAG_COST_EXACT, TAG_COST_ROUNDED, TAG_COST_TIEBREAK
    from .skeletons import COCO_KEYPOINTS

    codes = {"rounded": TAG_COST_ROUNDED, "tiebreak": TAG_COST_TIEBREAK}
    sigmas = COCO_KEYPOINTS.sigmas if k == 17 else np.full(k, OTHER_SIGMA)
    return CrowdOptions(
        tag_cost=codes.get(config.tag_cost, TAG_COST_EXACT),
        regroup=config.regroup,
        spatial_weight=float(config.spatial_weight),
        spatial_gate=np.inf if config.spatial_gate is None else float(config.spatial_gate),
        limbs=_limb_matrix(config.spatial_limbs, k),
        refine_window=-1.0 if config.refine_window is None else float(config.refine_window),
        refine_tag_gate=config.refine_tag_gate,
        crowd_refine=config.refine_window is not None
        or config.refine_tag_gate
        or (config.spatial_gate is not None and config.refine_mode != "mmpose"),
        min_score=float(config.min_score),
        pose_nms=-1.0 if config.pose_nms is None else float(config.pose_nms),
        sigmas=np.ascontiguousarray(sigmas, dtype=np.float64),
    )


def _decode_numpy(
    heat: np.ndarray, tag: np.ndarray, config: DecodeConfig, order: np.ndarray, num_threads: int
) -> list[Poses]:
    b, k, h, w = heat.shape
    if not _uses_crowd(config):
        return _NumpyPlan(config, heat.shape, tag.shape[2], heat.dtype, num_threads).run(heat, tag)
    from ._crowd_batch import decode_range_crowd
    from ._grouping import empty_people

    opts = _options(config, h, w, heat.dtype)
    out = empty_people((b,), _capacity(config, k, opts.max_candidates), k, tag.shape[2], heat.dtype)
    out_n = np.zeros(b, np.int64)
    copts = _crowd_options(config, k)

    def run(start: int, stop: int) -> None:
        decode_range_crowd(heat, tag, order, opts, copts, (start, stop), out, out_n)

    run_chunks(run, b, num_threads)
    return collect(out, out_n)


def _raise_non_finite(heat: np.ndarray, tag: np.ndarray) -> None:
    """Raise the error for maps the kernels found NaN or infinity in, with the counts."""
    check_finite(heat, "heatmaps")
    check_finite(tag, "tags")
    raise ValueError("heatmaps or tags contain NaN or infinite values")


class _NumpyPlan:
    """Everything a numpy call of :func:`decode` derives from its arguments' metadata.

    ``_decode_numpy`` builds one per call; :func:`_numpy_plan` keeps one per
    (config, shapes, dtypes, num_threads), built with the same checks as the
    general path, so that a repeated call of plain numpy arrays validates
    nothing it has seen and runs the kernel directly. A one-image call then
    spends far less time in Python, which matters next to a kernel of a few
    tenths of a millisecond.
    """

    __slots__ = ("cap", "d", "dtype", "kernel", "opts", "order", "tag_shape", "threads")

    def __init__(
        self, config: DecodeConfig, shape: tuple[int, ...], d: int, dtype: np.dtype, threads: int
    ) -> None:
        from ._batch import decode_range
        from ._compile_ahead import prepare as prepare_kernels

        b, k, h, w = shape
        self.kernel = decode_range
        self.dtype = dtype
        self.opts = _options(config, h, w, dtype)
        self.order = _joint_order(config, k)
        prepare_kernels(dtype, self.opts, self.order)
        self.cap = _capacity(config, k, self.opts.max_candidates)
        self.tag_shape = (b, k, d, h, w)
        self.d = d
        self.threads = threads

    def run(self, heat: np.ndarray, tags: np.ndarray) -> list[Poses]:
        """Decode C-contiguous, writeable maps of the plan's shapes and work dtype."""
        from ._grouping import empty_people

        b, k = self.tag_shape[:2]
        tag = tags.reshape(self.tag_shape)
        out = empty_people((b,), self.cap, k, self.d, self.dtype)
        out_n = np.zeros(b, np.int64)
        kernel, order, opts = self.kernel, self.order, self.opts
        run_chunks(
            lambda start, stop: kernel(heat, tag, order, opts, (start, stop), out, out_n),
            b,
            self.threads,
        )
        if out_n.min() < 0:
            _raise_non_finite(heat, tag)
        return collect(out, out_n)


_PLANS: dict[tuple[Any, ...], tuple[DecodeConfig | None, _NumpyPlan | None]] = {}


def _numpy_plan(
    heatmaps: np.ndarray, tags: np.ndarray, config: Any, num_threads: Any
) -> _NumpyPlan | None:
    """Return the :class:`_NumpyPlan` of a call, or None where the general path must run.

    Only numpy arrays that the kernels take as they are: one dtype, float32 or
    float64 in the machine's byte order, C-contiguous and writeable (anything
    else is converted by the general path), a batch of at least one image, and
    a config without the crowd options. Invalid arguments raise the general
    path's errors, from the same checks.
    """
    if not (config is None or type(config) is DecodeConfig):
        return None
    if not (num_threads is None or type(num_threads) is int):
        return None
    dtype = heatmaps.dtype
    if dtype != tags.dtype or dtype.type not in (np.float32, np.float64) or not dtype.isnative:
        return None
    f_heat, f_tags = heatmaps.flags, tags.flags
    if not (f_heat.c_contiguous and f_heat.writeable and f_tags.c_contiguous and f_tags.writeable):
        return None
    key = (id(config), heatmaps.shape, tags.shape, dtype, num_threads)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    resolved = _resolve_config(config, {})
    threads = (
        default_threads() if num_threads is None else check_int(num_threads, "num_threads", low=1)
    )
    shape, d = _check_inputs(heatmaps, tags)
    plan = None
    if shape[0] > 0 and not _uses_crowd(resolved):
        plan = _NumpyPlan(resolved, shape, d, dtype, threads)
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[key] = (config, plan)  # holding config keeps its id from being reused
    return plan


def collect(out: People, out_n: np.ndarray) -> list[Poses]:
    """One :class:`Poses` per image from the kernels' batch of people."""
    return [
        Poses(out.kp[i, :n].copy(), out.score[i, :n].copy(), out.tag[i, :n].copy())
        for i, n in enumerate(out_n.tolist())
    ]


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
    from ._peaks import empty_candidates
    from ._torch_path import group_and_refine

    for dt in (np.float32, np.float64):
        heat = np.zeros((1, 2, 4, 4), dt)
        heat[0, :, 1, 1] = 1.0
        tag = np.zeros((1, 2, 1, 4, 4), dt)
        config = DecodeConfig()
        order = np.arange(2, dtype=np.int64)
        _decode_numpy(heat, tag, config, order, 1)
        _decode_numpy(heat, tag, DecodeConfig.preset("crowd"), order, 1)
        # the kernels of the tensor path, which takes candidates found on the device
        cand = empty_candidates((1,), 2, 1, 1, np.dtype(dt))
        maps = (heat[0], tag[0])
        group_and_refine(cand, (4, 4), lambda bi, ki, maps=maps: maps, config, order, 1)
