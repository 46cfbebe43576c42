"""Numba kernel of :func:`decode_instances`: seeded pixel grouping by tag distance.

numpy + numba only (no torch, no Python objects in the loops). The public
wrapper in ``instance_decoding.py`` validates, converts and preallocates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import kernel

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


class Remaining(NamedTuple):
    """The unassigned foreground pixels, compacted after every group.

    ``idx (R,)`` int64 raster index, ``score (R,)``, ``cls (R,)`` int64 and
    ``tag (R, D)`` side by side, so that every pass reads memory in order.
    """

    idx: np.ndarray
    score: np.ndarray
    cls: np.ndarray
    tag: np.ndarray


@kernel(no_cpython_wrapper=True)
def _foreground(score, cls, tags, threshold, labels):
    """Collect the pixels scoring above ``threshold`` as :class:`Remaining`, with their count.

    Clears ``labels`` (every pixel background).
    """
    n_pix = score.shape[0]
    rem = Remaining(
        np.empty(n_pix, np.int64),
        np.empty(n_pix, score.dtype),
        np.empty(n_pix, np.int64),
        np.empty((n_pix, tags.shape[1]), tags.dtype),
    )
    r = 0
    for i in range(n_pix):
        labels[i] = 0
        if score[i] > threshold:
            rem.idx[r] = i
            rem.score[r] = score[i]
            rem.cls[r] = cls[i]
            for k in range(tags.shape[1]):
                rem.tag[r, k] = tags[i, k]
            r += 1
    return rem, r


@kernel(inline="always", no_cpython_wrapper=True)
def _joins(rem, j, seed, centre, limit):
    """Whether remaining pixel j is within the tag threshold of ``centre`` (the seed always is)."""
    dist = 0.0
    for k in range(centre.shape[0]):
        t = rem.tag[j, k] - centre[k]
        dist += t * t
    return dist < limit or j == seed


@kernel(no_cpython_wrapper=True)
def _refine_centre(rem, r, seed, centre, limit, iterations):
    """Move ``centre`` to the mean tag of the seed's class pixels within the threshold.

    ``iterations`` times, starting from the seed's tag.
    """
    d = centre.shape[0]
    c = rem.cls[seed]
    acc = np.empty(d, np.float64)
    for k in range(d):
        centre[k] = rem.tag[seed, k]
    for _ in range(iterations):
        acc[:] = 0.0
        cnt = 0
        for j in range(r):
            if rem.cls[j] == c and _joins(rem, j, seed, centre, limit):
                for k in range(d):
                    acc[k] += rem.tag[j, k]
                cnt += 1
        for k in range(d):
            centre[k] = acc[k] / cnt


@kernel(inline="always", no_cpython_wrapper=True)
def _keep(rem, j, kept):
    """Move remaining pixel j to slot ``kept`` (``kept <= j``)."""
    if kept != j:
        rem.idx[kept] = rem.idx[j]
        rem.score[kept] = rem.score[j]
        rem.cls[kept] = rem.cls[j]
        for k in range(rem.tag.shape[1]):
            rem.tag[kept, k] = rem.tag[j, k]


@kernel(no_cpython_wrapper=True)
def _take_group(rem, r, seed, centre, limit, members, mean):
    """Take the seed's group out of the remaining pixels; keep the others, in order.

    ``members`` receives the group's raster indices, ``mean (D,)`` its mean
    tag. Returns ``(members, total score, pixels left, next seed)``: the next
    seed is the highest-scoring pixel left, first in raster order on ties
    (-1 when none is left).
    """
    c = rem.cls[seed]
    mean[:] = 0.0
    cnt = 0
    total = 0.0
    kept = 0
    next_seed = -1
    for j in range(r):
        if rem.cls[j] == c and _joins(rem, j, seed, centre, limit):
            members[cnt] = rem.idx[j]
            cnt += 1
            total += rem.score[j]
            for k in range(mean.shape[0]):
                mean[k] += rem.tag[j, k]
            continue
        _keep(rem, j, kept)
        if next_seed < 0 or rem.score[kept] > rem.score[next_seed]:
            next_seed = kept
        kept += 1
    for k in range(mean.shape[0]):
        mean[k] = mean[k] / max(cnt, 1)
    return cnt, total, kept, next_seed


@kernel()
def group_pixels(score, cls, tags, opts, out):
    """Group the foreground pixels of one image; return ``(P, pixels left unassigned)``.

    score (HW,) float, cls (HW,) int64, tags (HW, D) float; ``opts`` a
    :class:`PixelOptions`, ``out`` a :class:`PixelOutputs`. Seeds are taken
    in score order (highest first, lowest raster index on ties); each takes
    the pixels of its class within ``tag_threshold`` of its refined centre
    (:func:`_refine_centre`); groups smaller than ``min_size`` stay background.
    """
    d = tags.shape[1]
    limit = opts.tag_threshold * opts.tag_threshold
    rem, r = _foreground(score, cls, tags, opts.threshold, out.labels)
    members = np.empty(score.shape[0], np.int64)
    centre = np.empty(d, np.float64)
    mean = np.empty(d, np.float64)
    seed = -1
    for j in range(r):
        if seed < 0 or rem.score[j] > rem.score[seed]:
            seed = j
    p = 0
    seeds = 0
    while r > 0 and p < opts.max_instances and seeds < opts.max_seeds:
        seeds += 1
        c = rem.cls[seed]
        _refine_centre(rem, r, seed, centre, limit, opts.iterations)
        cnt, total, r, seed = _take_group(rem, r, seed, centre, limit, members, mean)
        if cnt < opts.min_size:
            continue  # a fragment: its pixels stay background
        p += 1
        for j in range(cnt):
            out.labels[members[j]] = p
        out.score[p - 1] = total / cnt
        out.cls[p - 1] = c
        out.area[p - 1] = cnt
        for k in range(d):
            out.tag[p - 1, k] = mean[k]
    return p, r


@kernel()
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
