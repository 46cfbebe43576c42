"""Decode detection heatmaps and tag maps into people (the paper's parsing, §3.3).

:func:`decode` takes a batch of heatmaps ``(B, K, H, W)`` and tag maps
``(B, K, H, W)`` or ``(B, K, D, H, W)`` and returns one :class:`Poses` per image.
This module is the public layer: it checks the inputs and resolves the
options, then hands the call to the private ``_decode`` package, which builds
the kernels' records (``_decode/options.py``), runs the compiled numba kernels
over the batch on a pool of threads (``_decode/plan.py``) and returns the
people. :class:`DecodeConfig` holds the options; :meth:`DecodeConfig.preset`
gives the settings of each reference implementation.

Coordinate convention: ``x`` is the column and ``y`` the row, in heatmap
pixels; the value of pixel ``(row i, column j)`` sits at ``x = j +
center_shift``, ``y = i + center_shift``, with ``center_shift = 0.5`` by
default (the pixel centre, as the reference parsers output after their
quarter-pixel adjustment). :meth:`Poses.transform` and :meth:`Poses.rescale`
map the result to image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._decode.options import joint_order, resolve, uses_crowd
from ._decode.plan import Plan, cache_key, cached_plan, remember
from ._decode.threads import default_threads
from ._validation import (
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

__all__ = ["DecodeConfig", "Poses", "decode", "warmup"]


# --- input handling -------------------------------------------------------------------------
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
        hint = ""
        if layout == "BKHW" and ts[0] == b and ts[2:] == (h, w) and ts[1] % k == 0 and ts[1] > k:
            dim = ts[1] // k
            hint = (
                f"; tags flattened to (B, D*K, H, W) with channel d*K + k (mmpose's layout, "
                f"D = {dim}) must be reshaped to (B, K, D, H, W): "
                f"tags.reshape(B, {dim}, K, H, W).transpose(0, 2, 1, 3, 4) for numpy, "
                f"tags.view(B, {dim}, K, H, W).transpose(1, 2) for torch"
            )
        raise ValueError(
            f"tags must match heatmaps (B, K, H, W) = {shape_str((b, k, h, w))}, got tags of "
            f"shape {shape_str(ts)} (layout ({', '.join(layout)})){hint}"
        )
    d = 1 if layout == "BKHW" else ts[2]
    if k < 1 or h < 1 or w < 1 or d < 1:
        raise ValueError(
            f"heatmaps and tags need K, H, W, D >= 1, got heatmaps {shape_str(heatmaps.shape)} "
            f"and tags {shape_str(ts)}"
        )
    return (b, k, h, w), d


# --- decode ---------------------------------------------------------------------------------
def decode(
    heatmaps: Any,
    tags: Any,
    config: DecodeConfig | str | None = None,
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
    config : DecodeConfig or str, optional
        The options; defaults to ``DecodeConfig()``. A string names a preset:
        ``decode(h, t, "mmpose-1.x")`` is ``decode(h, t,
        DecodeConfig.preset("mmpose-1.x"))``.
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
    >>> len(poses), poses.keypoints[0, :, :2].tolist()  # single-pixel peaks: pixel centres
    (1, [[3.5, 2.5], [3.5, 5.5]])
    >>> (ref,) = ae.decode(heat, tags, "higherhrnet", refine=False)  # ties move by -0.25
    >>> ref.keypoints[0, :, :2].tolist()
    [[3.25, 2.25], [3.25, 5.25]]
    """
    key = None if options else cache_key(heatmaps, tags, config, num_threads)
    plan = cached_plan(key, config)
    if plan is not None:
        return plan.run(heatmaps, tags)
    config = resolve(config, options)
    if num_threads is None:
        num_threads = default_threads()
    else:
        num_threads = check_int(num_threads, "num_threads", low=1)
    (b, k, h, w), d = _check_inputs(heatmaps, tags)
    joint_order(config, k)  # checked against K before anything runs
    if b == 0:
        return []
    if is_tensor(heatmaps) and heatmaps.device.type == "cuda" and not uses_crowd(config):
        from ._decode.torch_path import decode_tensors

        check_finite_fast(heatmaps, "heatmaps")
        check_finite_fast(tags, "tags")
        return decode_tensors(heatmaps, tags, config, d, num_threads)
    dtype = work_dtype(heatmaps.dtype, tags.dtype)
    heat = to_numpy(heatmaps, dtype)
    tag = to_numpy(tags, dtype).reshape(b, k, d, h, w)
    plan = Plan(config, (b, k, h, w), d, dtype, num_threads)
    remember(key, config, plan)
    return plan.run(heat, tag)


# --- warm-up --------------------------------------------------------------------------------
WORK_DTYPES = ("float32", "float64")


def warmup(dtypes: str | Sequence[str] = "float32") -> None:
    """Compile (or load from numba's cache) the decoder's kernels.

    Runs :func:`decode` on tiny maps of each work dtype, through the
    whole-image kernels (the defaults' and the references' presets'), the
    candidate-grouping and refine kernels of the tensor path, and
    :func:`~associative_embedding.decode_instances`, so that the first real
    call does not pay for compilation. Crowd options that search missing
    joints over the whole map (``refine_window=None``,
    ``refine_exclusive=False``, ``spatial_gate=None``) have a kernel of their
    own, compiled on its first use. With more than one core and a writable
    numba cache, a second Python process compiles the references', the tensor
    path's and ``decode_instances``' kernels into the cache while this one
    compiles the defaults' (itself with the first call's two-process split).

    Parameters
    ----------
    dtypes : str or sequence of str, default "float32"
        The work dtypes to compile for, ``"float32"`` and/or ``"float64"``.
        :func:`decode` works in float64 when the heatmaps or the tags are
        float64, and in float32 for every other dtype (float32, float16,
        bfloat16: what networks output). Each dtype compiles its own kernels,
        so add ``"float64"`` only if you decode float64 maps.

    Returns
    -------
    None
        Nothing; the kernels are compiled as a side effect.

    Raises
    ------
    TypeError
        If ``dtypes`` is neither a str nor a sequence.
    ValueError
        If a dtype is not ``"float32"`` or ``"float64"``, or ``dtypes`` is empty.

    Examples
    --------
    >>> import associative_embedding as ae
    >>> ae.warmup()  # float32, what networks output
    >>> ae.warmup(["float32", "float64"])  # also for float64 maps
    """
    from ._decode.compile_ahead import start_warmup_child, wait_child, warming

    names = check_work_dtypes(dtypes)
    child = start_warmup_child(",".join(names))
    with warming():  # warmup is the notice: no first-call message
        try:
            for name in names:
                warm_share("crowd", name)
        finally:
            if child is not None:
                wait_child(child)
        for name in names:  # loads what the child compiled (or compiles it, if it failed)
            warm_share("other", name)


def check_work_dtypes(dtypes: Any) -> tuple[str, ...]:
    """Check ``warmup``'s ``dtypes``: a name or a sequence of names from :data:`WORK_DTYPES`."""
    names = (dtypes,) if isinstance(dtypes, str) else dtypes
    try:
        names = tuple(dict.fromkeys(names))
    except TypeError:
        raise TypeError(
            f"dtypes must be a str or a sequence of str, got {type(dtypes).__name__}"
        ) from None
    if not names:
        raise ValueError(f"dtypes must name at least one of {WORK_DTYPES}, got {dtypes!r}")
    for name in names:
        if name not in WORK_DTYPES:
            raise ValueError(f"dtypes must be among {WORK_DTYPES}, got {name!r}")
    return names


def warm_child(dtypes: str) -> None:
    """Run the second process of :func:`warmup`: the ``"other"`` share of each dtype.

    ``dtypes``: work dtype names, comma-separated.
    """
    for name in dtypes.split(","):
        warm_share("other", name)


def warm_share(share: str, dtype: str) -> None:
    """Compile (or load) one share of :func:`warmup`'s kernels for one work dtype (a name).

    ``share``: ``"crowd"``, the defaults' whole-image kernels; ``"other"``, the
    references' whole-image kernels, the tensor path's candidate grouping and
    missing-joint search, and the pixel grouping of ``decode_instances``.
    """
    from ._decode.peaks import empty_candidates
    from ._decode.torch_path import group_and_refine
    from .instance_decoding import decode_instances

    dt = np.dtype(dtype)
    heat = np.zeros((1, 2, 4, 4), dt)
    heat[0, :, 1, 1] = 1.0
    tag = np.zeros((1, 2, 1, 4, 4), dt)
    if share == "crowd":
        Plan(DecodeConfig(), heat.shape, 1, heat.dtype, 1).run(heat, tag)
        return
    reference = DecodeConfig.preset("higherhrnet")
    Plan(reference, heat.shape, 1, heat.dtype, 1).run(heat, tag)
    # the kernels of the tensor path, which takes candidates found on the device
    cand = empty_candidates((1,), 2, 1, 1, dt)
    maps = (heat[0], tag[0])
    group_and_refine(cand, (4, 4), lambda bi, ki, maps=maps: maps, reference, 1)
    decode_instances(heat[:, :1], tag[:, 0])  # the pixel grouping of decode_instances
