"""Whole images and ranges of a batch, end to end (numba).

:func:`decode_range` runs peaks, grouping and the missing-joint search on
images ``start:stop`` of a numpy batch with the references' grouping,
:func:`decode_range_crowd` with the crowd options (the defaults), and
:func:`decode_range_crowd_whole_map` with crowd options that search missing
joints over the whole map as the references do (``options.kernel_path``
picks one of the three); :func:`group_range` and
:func:`refine_range` run the two later steps on candidates found elsewhere
(the torch path finds them on the tensors' device). ``plan.py`` calls these
from a pool of threads on disjoint ranges; every kernel releases the GIL.
Each takes the ``options.DecodeOptions`` record.
"""

from __future__ import annotations

import numpy as np

from .crowd import limbs_fit, regroup, select_people, without_spatial
from .jit import kernel
from .matching import first_pass
from .missing import REFINE_OFF, joint_missing, refine_crowd, refine_image
from .options import DecodeOptions
from .peaks import (
    TILE,
    Candidates,
    find_candidates,
    gather_candidates,
    new_candidates,
    rows_finite,
)
from .people import People, group_image, write_people


@kernel(inline="always", no_cpython_wrapper=True)
def _image_candidates(cand, b):
    return Candidates(cand.val[b], cand.idx[b], cand.cnt[b], cand.tag[b], cand.nb[b])


@kernel(inline="always", no_cpython_wrapper=True)
def _image_people(out, b):
    return People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])


@kernel(inline="always", no_cpython_wrapper=True)
def _all_joints(n_joints):
    """``slot``: joint k's maps at index k."""
    slot = np.empty(n_joints, np.int64)
    for k in range(n_joints):
        slot[k] = k
    return slot


@kernel(no_cpython_wrapper=True)
def _tags_finite(tags, searched):
    """Whether the tag maps are finite, but for those of the joints ``searched (K,)`` marks.

    Those were read, and checked, by the missing-joint search.
    """
    n_joints, dim, h_size, w_size = tags.shape
    fin = np.empty(w_size, tags.dtype)
    for k in range(n_joints):
        if searched[k]:
            continue
        if not rows_finite(tags[k].reshape((dim * h_size, w_size)), fin):
            return False
    return True


@kernel(inline="always", no_cpython_wrapper=True)
def _missing_joints(det, n_people):
    """``(K,)`` bool: the joints one of the first ``n_people`` people misses."""
    n_joints = det.shape[1]
    missing = np.zeros(n_joints, np.bool_)
    for k in range(n_joints):
        missing[k] = joint_missing(det, n_people, k)
    return missing


@kernel(inline="always", no_cpython_wrapper=True)
def _tile_max(heat, r):
    """Allocate the peak search's record of each tile's largest heat, for the missing-joint search.

    ``(K, n_tiles)`` when the search runs on tiles of the peak search's size
    (``TILE``), else ``(0, n_tiles)``: nothing is kept.
    """
    n_joints, h_size, w_size = heat.shape
    n_keep = n_joints if r.mode != REFINE_OFF and r.block == TILE else 0
    n_tiles = ((h_size + TILE - 1) // TILE) * ((w_size + TILE - 1) // TILE)
    return np.empty((n_keep, n_tiles), heat.dtype)


@kernel(inline="always", no_cpython_wrapper=True)
def _whole_map_search(heat, tags, n_people, cand, r, out, tile_max):
    """Run the references' missing-joint search, then check the tag maps it did not read.

    ``missing.refine_image`` on the joints the first ``n_people`` people miss
    (none when the refinement is off), which checks their maps, and
    :func:`_tags_finite` on the other joints' tag maps. Returns whether every
    map read was finite. Shared by :func:`decode_image` and
    :func:`decode_image_crowd_whole_map`.
    """
    refined = r.mode != REFINE_OFF and n_people > 0
    searched = _missing_joints(out.det, n_people if refined else 0)
    slot = _all_joints(heat.shape[0])
    if refined and not refine_image(heat, tags, slot, n_people, cand, r, out, tile_max):
        return False
    return _tags_finite(tags, searched)


@kernel(inline="always")
def decode_image(heat, tags, order, opts, out):
    """Decode one image (``heat (K, H, W)``, ``tags (K, D, H, W)``) into ``out``; return P.

    Returns -1 instead if a value of ``heat`` or ``tags`` is NaN or infinite.
    The check rides on the passes that read every value anyway: the peak search
    reads all heatmaps, the missing-joint search all tag maps of the joints it
    searches; only the other tag maps take a pass of their own. Nothing reaches
    the matching before the heatmaps and the candidates' tags are known finite.
    """
    _, h_size, w_size = heat.shape
    cand = new_candidates(heat, tags, opts.max_candidates)
    r = opts.refine
    tile_max = _tile_max(heat, r)
    if not find_candidates(heat, opts.detection_threshold, opts.nms_kernel, cand, tile_max):
        return -1
    if not gather_candidates(heat, tags, cand):
        return -1
    n = group_image(cand, h_size, w_size, order, opts.group, out)
    if not _whole_map_search(heat, tags, n, cand, r, out, tile_max):
        return -1
    return n


@kernel(inline="always", no_cpython_wrapper=True)
def _crowd_people(heat, tags, order, opts, out):
    """Find and group one image's people with the crowd options.

    Returns ``(P, cand, opts, pix, tile_max)``. Candidates as
    :func:`decode_image` (``tile_max``: :func:`_tile_max`); ``matching.first_pass``; the spatial
    term and gate are turned off for the image where its people do not fit
    the limbs (``crowd.limbs_fit``, and the returned ``opts`` then say so);
    ``crowd.regroup``; ``people.write_people`` into the People record ``out``,
    the candidate of every detected joint into ``pix (cap, K)``. P is -1 if a
    value of ``heat`` or of the candidates' tags is NaN or infinite (the other
    tags are checked after the missing-joint search, as in :func:`decode_image`).
    """
    n_joints, h_size, w_size = heat.shape
    cand = new_candidates(heat, tags, opts.max_candidates)
    out_pix = np.empty((out.kp.shape[0], n_joints), np.int64)
    tile_max = _tile_max(heat, opts.refine)
    if not find_candidates(heat, opts.detection_threshold, opts.nms_kernel, cand, tile_max):
        return -1, cand, opts, out_pix, tile_max
    if not gather_candidates(heat, tags, cand):
        return -1, cand, opts, out_pix, tile_max
    g = opts.group
    copts = opts.crowd
    joint_of = np.empty((max(n_joints * opts.max_candidates, 1), n_joints), np.int64)
    n = first_pass(cand, order, g, copts.tag_cost, joint_of, True)
    if copts.spatial_gate < np.inf and not limbs_fit(cand, joint_of, n, w_size, copts):
        copts = without_spatial(copts)  # these people do not fit the skeleton's limbs
        opts = DecodeOptions(
            opts.detection_threshold,
            opts.nms_kernel,
            opts.max_candidates,
            opts.group,
            opts.refine,
            copts,
        )
    if copts.regroup > 0:
        n = regroup(cand, w_size, order, joint_of, n, opts)
    n_keep = n if g.max_out < 0 else min(n, g.max_out)
    n = write_people(joint_of, n_keep, cand, (h_size, w_size), order, g, out, out_pix)
    return n, cand, opts, out_pix, tile_max


@kernel(inline="always", no_cpython_wrapper=True)
def decode_image_crowd(heat, tags, order, opts, out):
    """Decode one image with the crowd options and their own missing-joint search; return P.

    :func:`_crowd_people`; the crowd's missing-joint search
    (``missing.refine_crowd``: a window, gate or tag gate around each
    person) unless the refinement is off; ``crowd.select_people``. The
    options must have ``crowd.crowd_refine`` set or the refinement off
    (``options.kernel_path`` is ``"crowd"``). Returns -1 if a value of
    ``heat`` or ``tags`` is NaN or infinite.
    """
    n, cand, opts, out_pix, tile_max = _crowd_people(heat, tags, order, opts, out)
    if n < 0:
        return -1
    if opts.refine.mode != REFINE_OFF:
        finite, searched = refine_crowd(heat, tags, n, cand, out, out_pix, opts, tile_max)
    else:
        finite, searched = True, np.zeros(heat.shape[0], np.bool_)
    if not finite or not _tags_finite(tags, searched):
        return -1
    return select_people(out, n, opts.crowd, out_pix, opts.group.tag_threshold)


@kernel(inline="always", no_cpython_wrapper=True)
def decode_image_crowd_whole_map(heat, tags, order, opts, out):
    """:func:`decode_image_crowd` with the references' missing-joint search over the whole map.

    For crowd options without a window, gate, tag gate or exclusive search
    (``crowd.crowd_refine`` off; ``options.kernel_path`` is
    ``"crowd-whole-map"``): ``missing.refine_image`` replaces
    ``missing.refine_crowd``. A kernel of its own, so that the defaults' first
    call does not compile the whole-map search.
    """
    n, cand, opts, out_pix, tile_max = _crowd_people(heat, tags, order, opts, out)
    if n < 0:
        return -1
    if not _whole_map_search(heat, tags, n, cand, opts.refine, out, tile_max):
        return -1
    return select_people(out, n, opts.crowd, out_pix, opts.group.tag_threshold)


@kernel()
def decode_range(heat, tags, order, opts, span, out, out_n):
    """Decode images ``span = (start, stop)`` of a batch.

    ``heat`` is ``(B, K, H, W)``, ``tags`` ``(B, K, D, H, W)``; ``out`` is a
    ``People`` record with a leading B axis; ``out_n[b]`` receives image
    b's number of people, or -1 if image b's maps hold NaN or infinity.
    """
    for b in range(span[0], span[1]):
        out_n[b] = decode_image(heat[b], tags[b], order, opts, _image_people(out, b))


@kernel()
def decode_range_crowd(heat, tags, order, opts, span, out, out_n):
    """:func:`decode_image_crowd` on images ``span = (start, stop)`` of a batch."""
    for b in range(span[0], span[1]):
        out_n[b] = decode_image_crowd(heat[b], tags[b], order, opts, _image_people(out, b))


@kernel()
def decode_range_crowd_whole_map(heat, tags, order, opts, span, out, out_n):
    """:func:`decode_image_crowd_whole_map` on images ``span = (start, stop)`` of a batch."""
    for b in range(span[0], span[1]):
        out_n[b] = decode_image_crowd_whole_map(
            heat[b], tags[b], order, opts, _image_people(out, b)
        )


@kernel()
def group_range(cand, h_size, w_size, order, opts, span, out, out_n):
    """Group images ``span = (start, stop)`` of a batch of candidates (leading axis B)."""
    for b in range(span[0], span[1]):
        out_n[b] = group_image(
            _image_candidates(cand, b), h_size, w_size, order, opts, _image_people(out, b)
        )


@kernel()
def refine_range(heat, tags, slot, cand, opts, span, out, out_n):
    """Recover missing joints of images ``span = (start, stop)``; ``slot (B, K)`` indexes heat."""
    no_tiles = np.empty((0, 1), heat.dtype)
    for b in range(span[0], span[1]):
        people = _image_people(out, b)
        refine_image(
            heat, tags, slot[b], out_n[b], _image_candidates(cand, b), opts, people, no_tiles
        )
