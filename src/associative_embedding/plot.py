"""Pictures of poses, tags and maps with matplotlib (the ``plot`` extra).

Three functions, each returning matplotlib objects so that the caller can keep
drawing on them:

- :func:`draw_poses` draws skeletons on an image and returns the
  :class:`~matplotlib.axes.Axes`;
- :func:`plot_tags` plots the tag of every joint of every person against the
  joint type, the picture of Fig. 3 of Newell et al. (2017), and returns the
  :class:`~matplotlib.axes.Axes`;
- :func:`show_maps` shows a network's detection heatmaps and tag maps side by
  side and returns the :class:`~matplotlib.figure.Figure`.

Coordinates are ``x`` (column) and ``y`` (row) in the pixels of the array that
is drawn, with the default convention of :func:`~associative_embedding.decode`:
pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)`` and its centre
is at ``(j + 0.5, i + 0.5)``. Images and maps are drawn with
``extent=(0, W, H, 0)`` so that this holds on screen. For points in another
convention, say where a pixel's centre is with ``center_shift`` (0.0 for
pixel centres at integer coordinates), as in
:class:`~associative_embedding.DecodeConfig`.

Joint sets: by default (``skeleton="auto"``) a result with K = 17 joint types
is drawn with :data:`~associative_embedding.COCO_KEYPOINTS`; any other K is
drawn as points with numbered joint types, no skeleton needed. Pass a
:class:`~associative_embedding.Skeleton` (such as
:data:`~associative_embedding.CROWDPOSE_KEYPOINTS`) for its limbs and names.

matplotlib is imported when a function is called, not when the module is
imported; install it with ``pip install associative-embedding[plot]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._plotting import (
    _batch_hint,
    _candidates,
    _float_array,
    _image,
    _joint_names,
    _keypoints,
    _offset,
    _person_colors,
    _person_scores,
    _pyplot,
    _resolve_skeleton,
    _tags_at,
    _visible,
)
from ._validation import check_int, check_number, shape_str
from .skeletons import Skeleton

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["draw_poses", "plot_tags", "show_maps"]


# --------------------------------------------------------------------------- draw_poses


def draw_poses(
    image: Any,
    poses: Any,
    skeleton: Skeleton | str | None = "auto",
    *,
    ax: Axes | None = None,
    score_threshold: float = 0.0,
    person_threshold: float = 0.1,
    colors: Any = None,
    linewidth: float = 2.0,
    markersize: float = 5.0,
    center_shift: float = 0.5,
) -> Axes:
    """Draw people's skeletons on an image, one colour per person.

    Parameters
    ----------
    image : ndarray or Tensor, shape (H, W), (H, W, 3) or (H, W, 4)
        The picture, grey (drawn with the ``gray`` colormap, scaled from its
        minimum to its maximum) or RGB(A): ``uint8`` or floats in [0, 1] (a
        float image in 0-255 is rejected, not drawn white). It sets the
        drawing's coordinates: draw poses in the pixels of this array (convert
        heatmap pixels to image pixels first).
    poses : Poses or ndarray, shape (P, K, 3)
        The people of this image: an object with a ``keypoints`` attribute (such
        as one element of the list :func:`~associative_embedding.decode`
        returns) or the keypoints themselves, ``x, y, score`` per joint. Joints
        with NaN coordinates or a score not above ``score_threshold`` are not
        drawn, nor are limbs that touch them.
    skeleton : Skeleton, None or "auto", default "auto"
        Its ``edges`` are drawn as limbs; ``None`` draws joints only.
        ``"auto"`` uses :data:`~associative_embedding.COCO_KEYPOINTS` for
        K = 17 and draws joints only for any other K.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. By default a new figure is made, sized to the image,
        with the axis frame hidden.
    score_threshold : float, default 0.0
        Joints whose score is ``<= score_threshold`` are hidden. The decoder's
        missing joints have score 0, so the default hides exactly those. Raise
        it to hide weak joints filled in by ``refine``.
    person_threshold : float, default 0.1
        People whose score is ``<= person_threshold`` are hidden: the
        decoder's ghosts, "people" started by weak spurious detections (a
        person's score is the mean detection value over the K joint types,
        missing ones counting 0; a few weak detections score well below 0.1,
        a real person with most joints detected well above). Scores come from
        ``poses.scores``, or for a plain keypoint array from the mean joint
        score over K. 0 draws everyone with a visible joint.
    colors : str or sequence of colours, optional
        A matplotlib colormap name or a list of colours, cycled over people.
        Default: ``tab10`` (``tab20`` beyond ten people).
    linewidth : float, default 2.0
        Width of the limbs, in points.
    markersize : float, default 5.0
        Diameter of the joint markers, in points.
    center_shift : float, default 0.5
        Where ``poses`` puts a pixel's centre: pixel ``(row i, column j)`` is at
        ``(j + center_shift, i + center_shift)``. 0.5 is the decoder's default;
        0.0 means pixel centres at integer coordinates.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, holding the image, then per drawn person one
        :class:`~matplotlib.collections.LineCollection` (its limbs, possibly
        empty) and one :class:`~matplotlib.collections.PathCollection` (its
        joints), labelled ``"person <p>"``.

    Raises
    ------
    TypeError
        If ``image`` or ``poses`` is not an array or has an unsupported dtype,
        or ``skeleton`` is not a :class:`~associative_embedding.Skeleton`,
        ``None`` or ``"auto"``.
    ValueError
        If a shape is wrong, ``image`` holds NaN or infinity, an RGB(A) float
        ``image`` leaves [0, 1], ``poses`` holds infinity or NaN scores, K
        differs from the skeleton's, or an option is out of range.

    See Also
    --------
    plot_tags : The tags of the same people, per joint type.

    Notes
    -----
    A person none of whose joints passes ``score_threshold``, or whose score
    does not pass ``person_threshold``, is skipped and takes no colour, so
    colours always match :func:`plot_tags` with the same thresholds.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> image = np.zeros((64, 64))
    >>> person = np.full((1, 17, 3), np.nan)
    >>> person[0, :, 2] = 0.0
    >>> person[0, 5:7] = [[20.5, 20.5, 0.9], [40.5, 20.5, 0.8]]  # the two shoulders
    >>> person[0, 0] = [30.5, 10.5, 0.9]  # the nose: a score of 2.6 / 17 > person_threshold
    >>> ax = ae.draw_poses(image, person)
    >>> [c.get_label() for c in ax.collections]
    ['person 0', 'person 0']
    >>> len(ax.collections[0].get_segments())  # the shoulder-to-shoulder limb
    1
    """
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    img = _image(image)
    kp = _keypoints(poses)
    skeleton = _resolve_skeleton(skeleton, kp.shape[1], "poses")
    threshold = check_number(score_threshold, "score_threshold")
    p_threshold = check_number(person_threshold, "person_threshold")
    lw = check_number(linewidth, "linewidth", low=0.0)
    ms = check_number(markersize, "markersize", low=0.0)
    shift = _offset(center_shift)

    h, w = img.shape[:2]
    if ax is None:
        scale = 6.0 / max(h, w, 1)
        fig, ax = plt.subplots(figsize=(max(w * scale, 1.0), max(h * scale, 1.0)))
        fig.subplots_adjust(0, 0, 1, 1)
        ax.set_axis_off()
    ax.imshow(
        img,
        cmap="gray" if img.ndim == 2 else None,
        extent=(0, w, h, 0),
        interpolation="nearest",
    )
    visible = _visible(kp, threshold, _person_scores(poses, kp), p_threshold)
    people = np.flatnonzero(visible.any(axis=1))
    for color, p in zip(_person_colors(len(people), colors), people, strict=True):
        xy = kp[p, :, :2] + shift
        edges = [] if skeleton is None else skeleton.edges
        segments = [xy[[a, b]] for a, b in edges if visible[p, a] and visible[p, b]]
        ax.add_collection(
            LineCollection(segments, colors=[color], linewidths=lw, label=f"person {p}")
        )
        ax.scatter(
            xy[visible[p], 0],
            xy[visible[p], 1],
            s=ms**2,
            color=[color],
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
            label=f"person {p}",
        )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    return ax


# --------------------------------------------------------------------------- plot_tags


def plot_tags(
    tags: Any,
    poses: Any,
    skeleton: Skeleton | str | None = "auto",
    *,
    dim: int | tuple[int, int] = 0,
    ax: Axes | None = None,
    score_threshold: float = 0.0,
    person_threshold: float = 0.1,
    heatmaps: Any = None,
    detection_threshold: float = 0.1,
    nms_kernel: int = 5,
    show_mean: bool = True,
    colors: Any = None,
    center_shift: float = 0.5,
) -> Axes:
    """Plot the tag of every joint of every person, per joint type (paper Fig. 3).

    The tag of joint ``k`` of person ``p`` is read from tag map ``k`` at the
    joint's pixel. Good tags put all joints of one person at one height and
    different people at different heights; that is what the grouping loss
    trains and what the decoder relies on.

    Parameters
    ----------
    tags : ndarray or Tensor, shape (K, H, W) or (K, D, H, W)
        The tag maps of one image (one element of the batch given to the
        decoder).
    poses : Poses or ndarray, shape (P, K, 3)
        People in tag-map pixels: decoded ones (an object with a ``keypoints``
        attribute, such as one element of the list
        :func:`~associative_embedding.decode` returns) or ground truth
        ``x, y, score`` (use the visibility flag as score). Joints with NaN
        coordinates or a score not above ``score_threshold`` are left out.
    skeleton : Skeleton, None or "auto", default "auto"
        Names the joint types on the x axis; ``None`` numbers them. ``"auto"``
        uses :data:`~associative_embedding.COCO_KEYPOINTS` for K = 17 and
        numbers the joints for any other K.
    dim : int or (int, int), default 0
        Tag component(s) to plot. An int plots that component against the joint
        type. A pair ``(i, j)`` makes a 2-D scatter of component ``i``
        against component ``j``, one colour per person, for D >= 2 (multi-scale
        and flip-test tags).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    score_threshold : float, default 0.0
        Joints whose score is ``<= score_threshold`` are left out.
    person_threshold : float, default 0.1
        People whose score is ``<= person_threshold`` are left out, as
        :func:`draw_poses` hides them (the decoder's ghosts), so that the
        colours of the two match. For ground truth with the visibility flag as
        score (no ``scores``), the mean flag over K counts: pass 0 to keep
        people with very few labelled joints.
    heatmaps : ndarray or Tensor, shape (K, H, W), optional
        If given, the tags of all detection candidates (local maxima of each
        heatmap over ``nms_kernel`` x ``nms_kernel`` pixels, above
        ``detection_threshold``) are drawn first as small grey dots: what the
        decoder has to group.
    detection_threshold : float, default 0.1
        Candidate threshold, as in :func:`~associative_embedding.decode`.
    nms_kernel : int, default 5
        Odd window side of the candidates' non-maximum suppression.
    show_mean : bool, default True
        Draw each person's mean tag (over its plotted joints) as a dashed line,
        or as a star in the 2-D scatter.
    colors : str or sequence of colours, optional
        Colormap name or list of colours, cycled over the plotted people.
    center_shift : float, default 0.5
        Where ``poses`` puts a pixel's centre, as in
        :class:`~associative_embedding.DecodeConfig`: a joint at ``x`` lies in
        column ``floor(x - center_shift + 0.5)`` (``floor(x)`` with the
        default 0.5, ``round(x)`` with 0.0).

    Returns
    -------
    matplotlib.axes.Axes
        The axes. Per plotted person it holds one
        :class:`~matplotlib.collections.PathCollection` labelled
        ``"person <p>"`` (its joints), and with ``show_mean`` one line (or star)
        labelled ``"mean <p>"``; candidates form one collection labelled
        ``"candidates"``.

    Raises
    ------
    TypeError
        If an input has the wrong kind or dtype.
    ValueError
        If a shape is wrong, K or H, W disagree between inputs, ``tags`` or
        ``heatmaps`` hold NaN or infinity, ``dim`` is out of range, or an
        option is out of range.

    See Also
    --------
    draw_poses : The same people drawn on the image.
    show_maps : The heatmaps and tag maps themselves.

    References
    ----------
    A. Newell, Z. Huang, J. Deng, "Associative Embedding: End-to-End Learning
    for Joint Detection and Grouping", NIPS 2017, Fig. 3.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> tags = np.zeros((17, 32, 32))
    >>> tags[:, :, 16:] = 2.0  # the right half of every tag map says "2"
    >>> people = np.zeros((2, 17, 3))
    >>> people[0, :, :] = [8.5, 8.5, 1.0]  # every joint of person 0 on the left
    >>> people[1, :, :] = [24.5, 8.5, 1.0]  # every joint of person 1 on the right
    >>> ax = ae.plot_tags(tags, people)
    >>> [sorted(set(c.get_offsets()[:, 1].tolist())) for c in ax.collections]
    [[0.0], [2.0]]
    """
    plt = _pyplot()
    maps = _float_array(tags, "tags", ["KHW", "KDHW"])
    kp = _keypoints(poses)
    k_ = kp.shape[1]
    if maps.ndim == 4 and maps.shape[0] != k_ and maps.shape[1] == k_:
        # (B, K, H, W) would otherwise be read as (K, D, H, W) with the wrong K
        raise ValueError(
            "tags must hold the tag maps of one image, shape (K, H, W) or (K, D, H, W) with "
            f"K={k_} joint types like poses, got shape {shape_str(maps.shape)}"
            + _batch_hint("tags")
        )
    if maps.shape[0] != k_:
        raise ValueError(
            f"poses has K={k_} joint types but tags has K={maps.shape[0]} (tags shape "
            f"{shape_str(maps.shape)})"
        )
    if maps.ndim == 3:
        maps = maps[:, None]
    k_, d_, h, w = maps.shape
    if h == 0 or w == 0:
        raise ValueError(f"tags must have H, W >= 1, got shape {shape_str(np.shape(tags))}")
    skeleton = _resolve_skeleton(skeleton, k_, "tags")
    if isinstance(dim, tuple):
        if len(dim) != 2:
            raise ValueError(f"dim must be an int or a pair of ints, got {dim!r}")
        dims = tuple(check_int(d, "dim", low=0, high=d_ - 1) for d in dim)
    else:
        dims = (check_int(dim, "dim", low=0, high=d_ - 1),)
    threshold = check_number(score_threshold, "score_threshold")
    p_threshold = check_number(person_threshold, "person_threshold")
    shift = _offset(center_shift)
    heat = None
    if heatmaps is not None:
        heat = _float_array(heatmaps, "heatmaps", ["KHW"])
        if heat.shape != (k_, h, w):
            raise ValueError(
                f"heatmaps must have shape (K, H, W) = {shape_str((k_, h, w))} like tags, "
                f"got shape {shape_str(heat.shape)}"
            )
        det_threshold = check_number(detection_threshold, "detection_threshold")
        kernel = check_int(nms_kernel, "nms_kernel", low=1)
        if kernel % 2 == 0:
            raise ValueError(f"nms_kernel must be odd, got {kernel}")

    visible = _visible(kp, threshold, _person_scores(poses, kp), p_threshold)
    joint_tags = _tags_at(maps, kp, visible, shift)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 4.0) if len(dims) == 1 else (5.0, 5.0))
    rng = np.random.default_rng(0)  # fixed jitter, so pictures are reproducible

    if heat is not None:
        jj, rr, cc = _candidates(heat, det_threshold, kernel)
        cand = maps[jj, :, rr, cc]
        if len(dims) == 1:
            cx, cy = jj + rng.uniform(-0.15, 0.15, size=len(jj)), cand[:, dims[0]]
        else:
            cx, cy = cand[:, dims[0]], cand[:, dims[1]]
        ax.scatter(cx, cy, s=10, color="0.6", alpha=0.6, zorder=1, label="candidates")

    people = np.flatnonzero(visible.any(axis=1))
    for color, p in zip(_person_colors(len(people), colors), people, strict=True):
        ks = np.flatnonzero(visible[p])
        t = joint_tags[p, ks]
        if len(dims) == 1:
            ax.scatter(ks, t[:, dims[0]], s=30, color=[color], zorder=3, label=f"person {p}")
            if show_mean:
                ax.axhline(
                    float(t[:, dims[0]].mean()),
                    color=color,
                    linestyle="--",
                    linewidth=1.0,
                    zorder=2,
                    label=f"mean {p}",
                )
        else:
            ax.scatter(
                t[:, dims[0]], t[:, dims[1]], s=30, color=[color], zorder=3, label=f"person {p}"
            )
            if show_mean:
                mean = t.mean(axis=0)
                ax.plot(
                    [mean[dims[0]]],
                    [mean[dims[1]]],
                    marker="*",
                    markersize=14,
                    color=color,
                    markeredgecolor="black",
                    linestyle="none",
                    zorder=4,
                    label=f"mean {p}",
                )

    if len(dims) == 1:
        ax.set_xticks(range(k_))
        ax.set_xticklabels(_joint_names(skeleton, k_), rotation=60, ha="right")
        ax.set_xlim(-0.5, k_ - 0.5)
        ax.set_xlabel("joint type")
        ax.set_ylabel("tag" if d_ == 1 else f"tag component {dims[0]}")
    else:
        ax.set_xlabel(f"tag component {dims[0]}")
        ax.set_ylabel(f"tag component {dims[1]}")
    ax.grid(True, alpha=0.3)
    return ax


# --------------------------------------------------------------------------- show_maps


def show_maps(
    heatmaps: Any,
    tags: Any,
    skeleton: Skeleton | str | None = "auto",
    *,
    joints: Sequence[int] | None = None,
    dim: int = 0,
    ncols: int = 6,
    shade_tags: bool = True,
    heatmap_cmap: str = "magma",
    tag_cmap: str = "coolwarm",
    panel_size: float = 1.6,
) -> Figure:
    """Show detection heatmaps and tag maps of one image side by side.

    The first cell sums up all joint types: the maximum over joints of the
    heatmaps, and at every pixel the tag of the joint type whose heatmap is
    highest there. Then one cell per joint type: its heatmap above its tag map.

    Parameters
    ----------
    heatmaps : ndarray or Tensor, shape (K, H, W)
        Detection heatmaps of one image.
    tags : ndarray or Tensor, shape (K, H, W) or (K, D, H, W)
        Tag maps of the same image.
    skeleton : Skeleton, None or "auto", default "auto"
        Names the panels; ``None`` numbers them. ``"auto"`` uses
        :data:`~associative_embedding.COCO_KEYPOINTS` for K = 17 and numbers
        the panels for any other K.
    joints : sequence of int, optional
        Joint types that get a cell, in order. Default: all K.
    dim : int, default 0
        Tag component shown when D > 1.
    ncols : int, default 6
        Cells per row.
    shade_tags : bool, default True
        Fade tag maps to black where the heatmap is low (opacity
        ``0.15 + 0.85 * heat / max(heat)``). Tags are trained only at joints;
        elsewhere they carry no meaning.
    heatmap_cmap : str, default "magma"
        Colormap of the heatmaps, shared scale from 0 to the largest value.
    tag_cmap : str, default "coolwarm"
        Diverging colormap of the tags, one scale for all panels, spanning the
        tags at pixels whose heatmap reaches half the largest heat value (the
        tags at joints; tags elsewhere are untrained and would stretch the
        scale).
    panel_size : float, default 1.6
        Side of one panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure. Its axes are the panels, cell by cell (each heatmap panel
        followed by its tag panel), then the two colour bars.

    Raises
    ------
    TypeError
        If an input has the wrong kind or dtype.
    ValueError
        If a shape is wrong, K or H, W disagree, an input holds NaN or
        infinity, a joint index or ``dim`` is out of range, or an option is out
        of range.

    See Also
    --------
    plot_tags : Tags read at the joints, per person.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> fig = ae.show_maps(np.zeros((17, 16, 16)), np.zeros((17, 16, 16)), joints=[0, 5])
    >>> [ax.get_title() for ax in fig.axes[:6]]
    ['all joints', 'tag of strongest joint', 'nose', 'tag', 'left shoulder', 'tag']
    """
    plt = _pyplot()
    from matplotlib.colors import Normalize

    heat = _float_array(heatmaps, "heatmaps", ["KHW"])
    maps = _float_array(tags, "tags", ["KHW", "KDHW"])
    if maps.ndim == 4:
        dim = check_int(dim, "dim", low=0, high=maps.shape[1] - 1)
        maps = maps[:, dim]
    else:
        dim = check_int(dim, "dim", low=0, high=0)
    if maps.shape != heat.shape:
        raise ValueError(
            f"tags must match heatmaps in K, H, W: heatmaps shape {shape_str(heat.shape)}, "
            f"tags shape {shape_str(np.shape(tags))}"
        )
    k_, h, w = heat.shape
    if h == 0 or w == 0:
        raise ValueError(f"heatmaps must have H, W >= 1, got shape {shape_str(heat.shape)}")
    names = _joint_names(_resolve_skeleton(skeleton, k_, "heatmaps"), k_, prefix="joint ")
    if joints is None:
        joint_list = list(range(k_))
    else:
        joint_list = [check_int(j, "joints", low=0, high=k_ - 1) for j in joints]
    cols = check_int(ncols, "ncols", low=1)
    size = check_number(panel_size, "panel_size", low=0.0, low_inclusive=False)

    cells = 1 + len(joint_list)
    cols = min(cols, cells)
    rows = -(-cells // cols)
    aspect = max(w / max(h, 1), 0.5)
    fig = plt.figure(figsize=(cols * size * aspect, 2 * rows * size + 1.2), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols)
    hmax = float(heat.max()) if heat.size else 0.0
    heat_norm = Normalize(0.0, hmax if hmax > 0 else 1.0)
    # the tags' scale comes from where joints are (tags elsewhere are untrained)
    strong = heat >= 0.5 * hmax if hmax > 0 else np.ones(heat.shape, dtype=bool)
    lo, hi = (float(maps[strong].min()), float(maps[strong].max())) if maps.size else (0.0, 0.0)
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1e-6)
    tag_norm = Normalize(mid - half, mid + half)

    if k_:
        strongest = heat.argmax(axis=0)
        summary_tag = np.take_along_axis(maps, strongest[None], axis=0)[0]
        summary_heat = heat.max(axis=0)
    else:
        summary_tag = summary_heat = np.zeros((h, w))
    panels = [("all joints", summary_heat, "tag of strongest joint", summary_tag)]
    panels += [(names[k], heat[k], "tag", maps[k]) for k in joint_list]

    extent = (0, w, h, 0)
    panel_axes = []
    for i, (title, hm, tag_title, tg) in enumerate(panels):
        r, c = divmod(i, cols)
        ax_h = fig.add_subplot(grid[2 * r, c])
        ax_t = fig.add_subplot(grid[2 * r + 1, c])
        ax_h.imshow(hm, cmap=heatmap_cmap, norm=heat_norm, extent=extent)
        alpha = None
        if shade_tags:
            alpha = 0.15 + 0.85 * np.clip(hm / hmax, 0.0, 1.0) if hmax > 0 else 0.15
            ax_t.set_facecolor("black")
        ax_t.imshow(tg, cmap=tag_cmap, norm=tag_norm, extent=extent, alpha=alpha)
        ax_h.set_title(title, fontsize=9)
        ax_t.set_title(tag_title, fontsize=8)
        for ax in (ax_h, ax_t):
            ax.set_xticks([])
            ax.set_yticks([])
        panel_axes += [ax_h, ax_t]
    # the colour bar added last sits closest to the panels
    for norm, cmap, label in (
        (tag_norm, tag_cmap, "tag" if np.ndim(tags) == 3 else f"tag component {dim}"),
        (heat_norm, heatmap_cmap, "heatmap"),
    ):
        fig.colorbar(
            plt.cm.ScalarMappable(norm=norm, cmap=cmap),
            ax=panel_axes,
            location="bottom",
            shrink=0.5,
            aspect=40,
            pad=0.01,
            label=label,
        )
    return fig
