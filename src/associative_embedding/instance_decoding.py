"""Group the pixels of a foreground map into instances by their tags.

:func:`decode_instances` is the pixel counterpart of :func:`decode`: a network
trained with :func:`instance_grouping_loss` predicts a foreground map and a
per-pixel tag map; pixels whose tags are close belong to one instance. The
per-image work runs in one compiled numba kernel; a batch is spread over a
pool of threads. The decoder needs numpy and numba only; torch tensors are
converted at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import (
    check_finite,
    check_float_pair,
    check_int,
    check_layout,
    check_number,
    shape_str,
    to_numpy,
    work_dtype,
)

__all__ = ["Instances", "decode_instances"]


@dataclass(frozen=True, eq=False)
class Instances:
    """The instances decoded from one image, in the order they were found.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int32
        Instance id of every pixel of the map: 0 is background (including
        dropped fragments and pixels left unassigned), ``p + 1`` is instance
        ``p``.
    scores : ndarray, shape (P,), float64
        Mean foreground score of each instance's pixels.
    classes : ndarray, shape (P,), int64
        Class of each instance (the channel of ``foreground``; 0 for a
        single-channel foreground).
    tags : ndarray, shape (P, D), float64
        Mean tag of each instance's pixels.
    areas : ndarray, shape (P,), int64
        Number of pixels of each instance.
    unassigned : int
        Foreground pixels left without an instance because ``max_instances``
        or ``max_seeds`` was reached (0 when every foreground pixel was
        grouped or dropped as part of a fragment).

    Raises
    ------
    ValueError
        If the shapes do not agree.

    See Also
    --------
    decode_instances : Produces these.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import Instances
    >>> labels = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.int32)
    >>> inst = Instances(labels, np.array([0.9, 0.8]), np.zeros(2, np.int64),
    ...                  np.zeros((2, 1)), np.array([2, 2]))
    >>> len(inst), inst.masks().shape
    (2, (2, 2, 3))
    """

    labels: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    tags: np.ndarray
    areas: np.ndarray
    unassigned: int = 0

    def __post_init__(self) -> None:
        arrays = (
            ("labels", self.labels, 2),
            ("scores", self.scores, 1),
            ("classes", self.classes, 1),
            ("tags", self.tags, 2),
            ("areas", self.areas, 1),
        )
        for name, arr, ndim in arrays:
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
            if arr.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
        p = self.scores.shape[0]
        if self.classes.shape[0] != p or self.tags.shape[0] != p or self.areas.shape[0] != p:
            raise ValueError(
                "scores (P,), classes (P,), tags (P, D) and areas (P,) must agree, got "
                f"{shape_str(self.scores.shape)}, {shape_str(self.classes.shape)}, "
                f"{shape_str(self.tags.shape)}, {shape_str(self.areas.shape)}"
            )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def masks(self) -> np.ndarray:
        """Return one boolean mask per instance.

        Returns
        -------
        ndarray, shape (P, H, W), bool
            ``masks[p]`` is ``labels == p + 1``.
        """
        ids = np.arange(1, len(self) + 1, dtype=self.labels.dtype)
        return self.labels[None] == ids[:, None, None]


def _check_inputs(foreground: Any, tags: Any) -> tuple[int, int, int, int, int]:
    """Validate kinds, ranks, shapes and values; return (B, C, H, W, D)."""
    check_float_pair(foreground, "foreground", tags, "tags")
    layout = check_layout(foreground, "foreground", ["BHW", "BCHW"])
    check_layout(tags, "tags", ["BDHW"])
    fs = tuple(int(s) for s in foreground.shape)
    b, c, h, w = (fs[0], 1, fs[1], fs[2]) if layout == "BHW" else fs
    ts = tuple(int(s) for s in tags.shape)
    if (ts[0], ts[2], ts[3]) != (b, h, w):
        raise ValueError(
            f"tags must have shape (B, D, H, W) = ({b}, D, {h}, {w}) to match foreground "
            f"{shape_str(fs)} ({', '.join(layout)}), got shape {shape_str(ts)}"
        )
    if ts[1] < 1 or c < 1:
        raise ValueError(
            f"tags need D >= 1 and foreground C >= 1, got tags {shape_str(ts)} and "
            f"foreground {shape_str(fs)}"
        )
    check_finite(foreground, "foreground")
    check_finite(tags, "tags")
    return b, c, h, w, ts[1]


def decode_instances(
    foreground: Any,
    tags: Any,
    *,
    threshold: float = 0.5,
    tag_threshold: float = 1.0,
    min_size: int = 8,
    max_instances: int = 100,
    max_seeds: int = 1000,
    iterations: int = 1,
    num_threads: int | None = None,
) -> list[Instances]:
    r"""Group the foreground pixels of each image into instances by their tags.

    Parameters
    ----------
    foreground : ndarray or Tensor, shape (B, H, W) or (B, C, H, W)
        Foreground scores per pixel, e.g. sigmoid or softmax probabilities,
        one channel per class. A pixel's score is its largest channel and its
        class that channel (the first one among ties). Any floating dtype.
    tags : ndarray or Tensor, shape (B, D, H, W)
        Per-pixel tags, at the resolution of ``foreground``. float64 inputs are
        decoded in float64, all others in float32.
    threshold : float, default 0.5
        A pixel is foreground when its score is ``> threshold``.
    tag_threshold : float, default 1.0
        A pixel joins an instance when the L2 distance of its tag to the
        instance's centre tag is ``< tag_threshold`` (the threshold of
        :func:`decode`; it suits the default ``"exp"`` push of
        :func:`instance_grouping_loss`; with ``push="margin"`` a value near
        ``margin / 2`` separates instances whose means are ``margin`` apart).
    min_size : int, default 8
        Groups of fewer pixels are fragments: dropped, their pixels left as
        background.
    max_instances : int, default 100
        At most this many instances per image; pixels still ungrouped then are
        counted in ``Instances.unassigned``.
    max_seeds : int, default 1000
        At most this many seeds (instances and fragments) per image; it bounds
        the time spent on noisy tags. Pixels still ungrouped then are counted
        in ``Instances.unassigned``.
    iterations : int, default 1
        Times an instance's centre is moved to the mean tag of the pixels
        within ``tag_threshold`` of it before its pixels are taken (0: the
        seed pixel's own tag is the centre).
    num_threads : int, optional
        Threads over the images of the batch (default: numba's thread count).

    Returns
    -------
    list of Instances
        One :class:`Instances` per image: the label map (H, W), and per
        instance its score, class, mean tag and area.

    Raises
    ------
    TypeError
        If an input is not a floating numpy array or tensor, the two are of
        different kinds, or an option has the wrong type.
    ValueError
        If a shape is wrong or inconsistent, an input holds NaN/Inf, or an
        option is out of range.

    See Also
    --------
    instance_grouping_loss : The loss that trains such tags.
    decode : The keypoint decoder.

    Notes
    -----
    The rules, for one image (all distances are L2 in tag space, computed in
    float64):

    1. Foreground pixels are those with score ``> threshold``; all start
       unassigned.
    2. The seed is the unassigned pixel with the highest score (the lowest
       raster index, row-major, among equal scores). Its tag is the centre
       :math:`c`.
    3. ``iterations`` times: :math:`c` becomes the mean tag of the unassigned
       pixels of the seed's class with :math:`\|h_i - c\| <` ``tag_threshold``
       (the seed always counts).
    4. The unassigned pixels of the seed's class within ``tag_threshold`` of
       :math:`c` (and the seed) form a group and become assigned. A group of at
       least ``min_size`` pixels is a new instance (ids 1, 2, ... in the order
       found); a smaller group is a fragment, left as background.
    5. Repeat from 2 until no pixel is unassigned, ``max_instances`` instances
       were found or ``max_seeds`` seeds were tried.

    Each seed costs ``iterations + 1`` passes over the unassigned pixels, which
    shrink as instances are taken: :math:`O((\text{seeds}) \cdot N_{fg} \cdot D)`
    at worst. Pixels are never reassigned, so two touching instances are split
    by whichever centre reaches a pixel first (the higher-scoring seed).
    The post-processing of De Brabandere et al. (2017) is a similar
    seed-and-threshold scheme (with mean shift for the centre). The first call
    compiles the kernel (2.3 s measured, float32), which numba then caches.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> fg = np.zeros((1, 4, 6), np.float32)
    >>> fg[0, :, :5] = 0.9                      # one foreground blob of two objects
    >>> tags = np.zeros((1, 1, 4, 6), np.float32)
    >>> tags[0, 0, :, 3:] = 2.0                 # ...told apart by their tags
    >>> (inst,) = ae.decode_instances(fg, tags, min_size=2)
    >>> inst.labels
    array([[1, 1, 1, 2, 2, 0],
           [1, 1, 1, 2, 2, 0],
           [1, 1, 1, 2, 2, 0],
           [1, 1, 1, 2, 2, 0]], dtype=int32)
    >>> inst.areas.tolist(), inst.scores.round(2).tolist()
    ([12, 8], [0.9, 0.9])
    """
    thr = check_number(threshold, "threshold")
    tag_thr = check_number(tag_threshold, "tag_threshold", low=0.0, low_inclusive=False)
    min_px = check_int(min_size, "min_size", low=1)
    max_inst = check_int(max_instances, "max_instances", low=1)
    max_sd = check_int(max_seeds, "max_seeds", low=1)
    n_iter = check_int(iterations, "iterations", low=0)
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads", low=1)
    b, c, h, w, d = _check_inputs(foreground, tags)

    dtype = work_dtype(foreground.dtype, tags.dtype)
    # writeable and contiguous in the work dtype: one compiled variant per dtype
    fg = to_numpy(foreground, dtype).reshape(b, c, h * w)
    if c == 1:
        score = np.ascontiguousarray(fg[:, 0])
        cls = np.zeros((b, h * w), np.int64)
    else:
        cls = np.ascontiguousarray(fg.argmax(1).astype(np.int64))
        score = np.ascontiguousarray(np.take_along_axis(fg, cls[:, None], 1)[:, 0])
    tg = np.ascontiguousarray(to_numpy(tags, dtype).reshape(b, d, h * w).transpose(0, 2, 1))

    cap = min(max_inst, h * w)
    labels = np.zeros((b, h * w), np.int32)
    out_score = np.zeros((b, cap), np.float64)
    out_class = np.zeros((b, cap), np.int64)
    out_tag = np.zeros((b, cap, d), np.float64)
    out_area = np.zeros((b, cap), np.int64)
    counts = np.zeros((b, 2), np.int64)
    if b:
        from ._decode.compile_ahead import announce
        from ._decode.instances import PixelOptions, PixelOutputs, group_pixels_range
        from ._decode.threads import default_threads, run_chunks

        opts = PixelOptions(thr, tag_thr, min_px, cap, max_sd, n_iter)
        out = PixelOutputs(labels, out_score, out_class, out_tag, out_area)

        def run(start: int, stop: int) -> None:
            group_pixels_range(score, cls, tg, opts, (start, stop), out, counts)

        announce(
            group_pixels_range,
            (score, cls, tg, opts, (0, b), out, counts),
            f"instance decoder's kernel for {dtype.name} maps",
        )

        run_chunks(run, b, num_threads or default_threads())

    result = []
    for i in range(b):
        p = int(counts[i, 0])
        result.append(
            Instances(
                labels[i].reshape(h, w),
                out_score[i, :p].copy(),
                out_class[i, :p].copy(),
                out_tag[i, :p].copy(),
                out_area[i, :p].copy(),
                int(counts[i, 1]),
            )
        )
    return result
