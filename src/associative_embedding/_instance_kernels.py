"""Numba kernel of :func:`decode_instances`: seeded pixel grouping by tag distance.

numpy + numba only (no torch, no Python objects in the loops). The public
wrapper in ``instance_decoding.py`` validates, converts and preallocates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["PixelOptions", "PixelOutputs", "group_pixels", "group_pixels_range"]


class PixelOptions(NamedTuple):
    """The options of :func:`group_pixels`.

    ``threshold`` (foreground score), ``tag_threshold``, ``min_size`` (pixels),
    ``max_instances``, ``max_seeds`` and ``iterations``.
    """

    threshold: float
    tag_threshold: float
    min_size: int
    max_instances: int
    max_seeds: int
    iterations: int


class PixelOutputs(NamedTuple):
    """The outputs of :func:`group_pixels` (or of a batch, with a leading B axis).

    ``labels (HW,)`` int32, ``score (Pmax,)`` float64, ``cls (Pmax,)`` int64, ``tag
    (Pmax, D)`` float64, ``area (Pmax,)`` int64.
    """

    labels: np.ndarray
    score: np.ndarray
    cls: np.ndarray
    tag: np.ndarray
    area: np.ndarray


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def group_pixels(score, cls, tags, opts, out):
    """Group the foreground pixels of one image; return ``(P, pixels left unassigned)``.

    score (HW,) float, cls (HW,) int64, tags (HW, D) float; ``opts`` a
    :class:`PixelOptions`, ``out`` a :class:`PixelOutputs`.
    """
    threshold = opts.threshold
    tag_threshold = opts.tag_threshold
    min_size = opts.min_size
    max_instances = opts.max_instances
    max_seeds = opts.max_seeds
    iterations = opts.iterations
    out_labels = out.labels
    out_score = out.score
    out_class = out.cls
    out_tag = out.tag
    out_area = out.area
    n_pix = score.shape[0]
    d = tags.shape[1]
    limit = tag_threshold * tag_threshold
    # the unassigned pixels, compacted after every group: index, score, class and tag rows
    # side by side, so that every pass reads memory in order
    remaining = np.empty(n_pix, np.int64)
    rem_score = np.empty(n_pix, score.dtype)
    rem_cls = np.empty(n_pix, np.int64)
    rem_tag = np.empty((n_pix, d), tags.dtype)
    members = np.empty(n_pix, np.int64)
    r = 0
    for i in range(n_pix):
        out_labels[i] = 0
        if score[i] > threshold:
            remaining[r] = i
            rem_score[r] = score[i]
            rem_cls[r] = cls[i]
            for k in range(d):
                rem_tag[r, k] = tags[i, k]
            r += 1
    centre = np.empty(d, np.float64)
    acc = np.empty(d, np.float64)
    # the first seed (a position in the compacted arrays): highest score, lowest raster index
    seed = -1
    for j in range(r):
        if seed < 0 or rem_score[j] > rem_score[seed]:
            seed = j
    p = 0
    seeds = 0
    while r > 0 and p < max_instances and seeds < max_seeds:
        seeds += 1
        c = rem_cls[seed]
        for k in range(d):
            centre[k] = rem_tag[seed, k]
        # refine the centre: mean tag of the pixels within the threshold, `iterations` times
        for _ in range(iterations):
            for k in range(d):
                acc[k] = 0.0
            cnt = 0
            for j in range(r):
                if rem_cls[j] != c:
                    continue
                dist = 0.0
                for k in range(d):
                    t = rem_tag[j, k] - centre[k]
                    dist += t * t
                if dist < limit or j == seed:
                    for k in range(d):
                        acc[k] += rem_tag[j, k]
                    cnt += 1
            for k in range(d):
                centre[k] = acc[k] / cnt
        # final pass: take the members, keep the others, find the next seed among them
        for k in range(d):
            acc[k] = 0.0
        cnt = 0
        total = 0.0
        kept = 0
        next_seed = -1
        for j in range(r):
            take = False
            if rem_cls[j] == c:
                dist = 0.0
                for k in range(d):
                    t = rem_tag[j, k] - centre[k]
                    dist += t * t
                take = dist < limit or j == seed
            if take:
                members[cnt] = remaining[j]
                cnt += 1
                total += rem_score[j]
                for k in range(d):
                    acc[k] += rem_tag[j, k]
            else:
                if kept != j:
                    remaining[kept] = remaining[j]
                    rem_score[kept] = rem_score[j]
                    rem_cls[kept] = rem_cls[j]
                    for k in range(d):
                        rem_tag[kept, k] = rem_tag[j, k]
                if next_seed < 0 or rem_score[kept] > rem_score[next_seed]:
                    next_seed = kept
                kept += 1
        r = kept
        seed = next_seed
        if cnt < min_size:
            continue  # a fragment: its pixels stay background
        p += 1
        for j in range(cnt):
            out_labels[members[j]] = p
        out_score[p - 1] = total / cnt
        out_class[p - 1] = c
        out_area[p - 1] = cnt
        for k in range(d):
            out_tag[p - 1, k] = acc[k] / cnt
    return p, r


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def group_pixels_range(score, cls, tags, opts, span, out, out_counts):
    """Run :func:`group_pixels` on images ``span = (start, stop)`` of a batch.

    Batched arrays: score (B, HW), cls (B, HW), tags (B, HW, D), ``out`` a
    :class:`PixelOutputs` with a leading B axis, out_counts (B, 2) = (P, pixels
    left unassigned).
    """
    for b in range(span[0], span[1]):
        image = PixelOutputs(out.labels[b], out.score[b], out.cls[b], out.tag[b], out.area[b])
        p, left = group_pixels(score[b], cls[b], tags[b], opts, image)
        out_counts[b, 0] = p
        out_counts[b, 1] = left
