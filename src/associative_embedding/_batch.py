"""Batch drivers of the decoder: one image end to end, and ranges of a batch (numba).

:func:`decode_range` runs peaks, grouping and refine on images ``start:stop``
of a numpy batch; :func:`group_range` and :func:`refine_range` run the two
later steps on candidates found elsewhere (the torch path finds them on the
tensors' device). The Python side (``decoding.py``) calls these from a pool of
threads on disjoint ranges; every kernel releases the GIL.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._grouping import People, group_image
from ._matching import GroupOptions
from ._peaks import (
    FIND_BLOCK,
    Candidates,
    find_candidates,
    gather_candidates,
    new_candidates,
    rows_finite,
)
from ._refine import REFINE_OFF, RefineOptions, joint_missing, refine_image


class DecodeOptions(NamedTuple):
    """Every option of one decode call, as the kernels read them.

    ``detection_threshold`` (a scalar of the work dtype, the largest not above
    the configured value: a comparison with it selects what a float64
    comparison with the configured value selects) and ``nms_kernel`` for the
    peaks, ``max_candidates``
    (M, the top-k per joint type), and the :class:`GroupOptions` and
    :class:`RefineOptions` records.
    """

    detection_threshold: float
    nms_kernel: int
    max_candidates: int
    group: GroupOptions
    refine: RefineOptions


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _image_candidates(cand, b):
    return Candidates(cand.val[b], cand.idx[b], cand.cnt[b], cand.tag[b], cand.nb[b])


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _image_people(out, b):
    return People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def decode_image(heat, tags, order, opts, out):
    """Decode one image (``heat (K, H, W)``, ``tags (K, D, H, W)``) into ``out``; return P.

    Returns -1 instead if a value of ``heat`` or ``tags`` is NaN or infinite.
    The check rides on the passes that read every value anyway: the peak search
    reads all heatmaps, the missing-joint search all tag maps of the joints it
    searches; only the other tag maps take a pass of their own. Nothing reaches
    the matching before the heatmaps and the candidates' tags are known finite.
    """
    n_joints, h_size, w_size = heat.shape
    cand = new_candidates(heat, tags, opts.max_candidates)
    r = opts.refine
    # the peak search keeps its tiles' largest heat for the missing-joint search
    n_keep = n_joints if r.mode != REFINE_OFF and r.block == FIND_BLOCK else 0
    nbx = (w_size + FIND_BLOCK - 1) // FIND_BLOCK
    nby = (h_size + FIND_BLOCK - 1) // FIND_BLOCK
    tile_max = np.empty((n_keep, nby * nbx), heat.dtype)
    if not find_candidates(heat, opts.detection_threshold, opts.nms_kernel, cand, tile_max):
        return -1
    if not gather_candidates(heat, tags, cand):
        return -1
    n = group_image(cand, h_size, w_size, order, opts.group, out)
    refined = r.mode != REFINE_OFF and n > 0
    if refined:
        slot = np.empty(n_joints, np.int64)
        for k in range(n_joints):
            slot[k] = k
        if not refine_image(heat, tags, slot, n, cand, r, out, tile_max):
            return -1
    fin = np.empty(w_size, tags.dtype)
    for k in range(n_joints):
        if refined and joint_missing(out.det, n, k):
            continue  # its tags were read, and checked, by the missing-joint search
        tk = tags[k]
        if not rows_finite(tk.reshape((tk.shape[0] * h_size, w_size)), fin):
            return -1
    return n


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def decode_range(heat, tags, order, opts, span, out, out_n):
    """Decode images ``span = (start, stop)`` of a batch.

    ``heat`` is ``(B, K, H, W)``, ``tags`` ``(B, K, D, H, W)``; ``out`` is a
    :class:`People` record with a leading B axis; ``out_n[b]`` receives image
    b's number of people, or -1 if image b's maps hold NaN or infinity.
    """
    for b in range(span[0], span[1]):
        out_n[b] = decode_image(heat[b], tags[b], order, opts, _image_people(out, b))


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def group_range(cand, h_size, w_size, order, opts, span, out, out_n):
    """Group images ``span = (start, stop)`` of a batch of candidates (leading axis B)."""
    for b in range(span[0], span[1]):
        out_n[b] = group_image(
            _image_candidates(cand, b), h_size, w_size, order, opts, _image_people(out, b)
        )


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def refine_range(heat, tags, slot, cand, opts, span, out, out_n):
    """Recover missing joints of images ``span = (start, stop)``; ``slot (B, K)`` indexes heat."""
    for b in range(span[0], span[1]):
        refine_image(
            heat,
            tags,
            slot[b],
            out_n[b],
            _image_candidates(cand, b),
            opts,
            _image_people(out, b),
            np.empty((0, 1), heat.dtype),
        )
