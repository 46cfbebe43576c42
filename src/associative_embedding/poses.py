"""The people decoded from one image: :class:`Poses`, and its coordinate transforms.

Coordinates are heatmap pixels: ``x`` is the column and ``y`` the row, pixel
``(row i, column j)`` at ``(j + center_shift, i + center_shift)`` (0.5 by
default, see :class:`~associative_embedding.DecodeConfig`), until mapped to
image pixels with :meth:`Poses.transform` or :meth:`Poses.rescale`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._validation import check_finite, check_float_array, check_number, shape_str, to_numpy
from ._validation import is_tensor as _is_tensor

__all__ = ["Person", "Poses"]


class Person(NamedTuple):
    """One decoded person: what iterating over or indexing a :class:`Poses` gives.

    Parameters
    ----------
    keypoints : ndarray, shape (K, 3)
        ``x``, ``y``, score of each joint (NaN coordinates where missing).
    score : float
        The person's score.
    tag : ndarray, shape (D,)
        The person's mean tag.
    """

    keypoints: np.ndarray
    score: float
    tag: np.ndarray


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
    >>> poses = Poses(np.zeros((2, 17, 3)), np.array([0.8, 0.1]), np.zeros((2, 1)))
    >>> len(poses)
    2
    >>> len(poses[poses.scores > 0.2]), [round(p.score, 2) for p in poses]
    (1, [0.8, 0.1])
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

    def __getitem__(self, index: Any) -> Any:
        """Select people: an integer gives one :class:`Person`, anything else a :class:`Poses`.

        ``index`` may be an integer (negative counts from the end), a slice, a
        boolean mask of shape (P,) (``poses[poses.scores > 0.2]``) or an array of
        integer indices (in any order, repeats allowed), as numpy indexes the
        first axis. The selection keeps the given order; the arrays are copies.

        Raises
        ------
        IndexError
            If an integer or index is out of range.
        TypeError
            If ``index`` is of another kind (e.g. a float or a tuple).
        ValueError
            If a boolean mask does not have shape (P,).
        """
        n = len(self)
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"person index {i} is out of range for {n} people")
            return Person(self.keypoints[i].copy(), float(self.scores[i]), self.tags[i].copy())
        if isinstance(index, slice):
            sel = np.arange(n)[index]
        elif isinstance(index, (list, np.ndarray)) or _is_tensor(index):
            arr = np.asarray(index.cpu() if _is_tensor(index) else index)
            if arr.dtype == np.bool_:
                if arr.shape != (n,):
                    raise ValueError(
                        f"a boolean mask over people must have shape (P,) = ({n},), "
                        f"got shape {shape_str(arr.shape)}"
                    )
                sel = np.flatnonzero(arr)
            elif arr.size == 0:
                sel = np.zeros(0, np.int64)
            elif arr.dtype.kind in "iu" and arr.ndim == 1:
                if ((arr < -n) | (arr >= n)).any():
                    raise IndexError(
                        f"person indices {arr.tolist()} are out of range for {n} people"
                    )
                sel = arr.astype(np.int64)
            else:
                raise TypeError(
                    "people are selected with a 1-D array of int or a boolean mask (P,), "
                    f"got dtype {arr.dtype} and shape {shape_str(arr.shape)}"
                )
        else:
            raise TypeError(
                "Poses indices must be an int, a slice, a boolean mask or an array of int, "
                f"got {type(index).__name__}"
            )
        return Poses(self.keypoints[sel], self.scores[sel], self.tags[sel])

    def __iter__(self) -> Iterator[Person]:
        """Iterate over the people, each a :class:`Person`, best score first."""
        for i in range(len(self)):
            yield self[i]

    @classmethod
    def concatenate(cls, poses: Sequence[Poses]) -> Poses:
        """Join the people of several :class:`Poses` (same K and D), in the given order.

        Parameters
        ----------
        poses : sequence of Poses
            At least one; all with the same number of joints K and tag size D.

        Returns
        -------
        Poses
            All people; the arrays take numpy's common dtype. The people are not
            re-sorted by score.

        Raises
        ------
        TypeError
            If an item is not a :class:`Poses`.
        ValueError
            If the sequence is empty or K or D differ.

        Examples
        --------
        >>> import numpy as np
        >>> from associative_embedding import Poses
        >>> a = Poses(np.zeros((2, 17, 3)), np.array([0.9, 0.5]), np.zeros((2, 1)))
        >>> both = Poses.concatenate([a, a[a.scores > 0.6]])
        >>> len(both), both.scores.tolist()
        (3, [0.9, 0.5, 0.9])
        """
        items = list(poses)
        if not items:
            raise ValueError("poses must hold at least one Poses, got an empty sequence")
        for i, p in enumerate(items):
            if not isinstance(p, Poses):
                raise TypeError(f"poses[{i}] must be a Poses, got {type(p).__name__}")
        k, d = items[0].keypoints.shape[1], items[0].tags.shape[1]
        for i, p in enumerate(items):
            if p.keypoints.shape[1] != k or p.tags.shape[1] != d:
                raise ValueError(
                    f"poses[{i}] has K={p.keypoints.shape[1]}, D={p.tags.shape[1]}; "
                    f"poses[0] has K={k}, D={d}"
                )
        return cls(
            np.concatenate([p.keypoints for p in items]),
            np.concatenate([p.scores for p in items]),
            np.concatenate([p.tags for p in items]),
        )

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
            If ``scale`` or ``offset`` has the wrong length or is not finite, or
            a scale is not positive.

        Examples
        --------
        >>> import numpy as np
        >>> from associative_embedding import Poses
        >>> p = Poses(np.array([[[1.5, 2.5, 0.9]]]), np.array([0.9]), np.zeros((1, 1)))
        >>> p.rescale(4.0, (1.0, -1.0)).keypoints.tolist()
        [[[7.0, 9.0, 0.9]]]
        """
        s = _pair(scale, "scale")
        if min(s) <= 0:
            raise ValueError(f"scale must be > 0 (a factor per axis), got {s}")
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
        hm = to_numpy(heatmaps, np.dtype(np.float64))
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
