"""COCO keypoint results and their evaluation with pycocotools (the ``coco`` extra).

- :func:`to_coco_results` turns the people decoded in one image into COCO's
  result format, a list of ``{"image_id", "category_id", "keypoints",
  "score"}`` dicts, ready for :func:`json.dump`.
- :func:`evaluate_keypoints` runs pycocotools' ``COCOeval`` with
  ``iouType="keypoints"`` (object keypoint similarity, OKS) and returns its ten
  summary figures as a dict.
- :func:`coco_ignore_mask` builds the training loss mask of one image from its
  COCO annotations: crowd regions and people without labelled keypoints are
  ignored.

This is what pose-ae-train (``test.py::genDtByPred``, ``coco_eval``) and
HigherHRNet (``COCODataset.evaluate``) do: pycocotools with the default COCO
OKS sigmas, no OKS non-maximum suppression, no rescoring.

pycocotools is imported when a function is called; install it with
``pip install associative-embedding[coco]``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import numbers
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._validation import check_choice, check_int, check_pose_keypoints, host, shape_str

__all__ = ["coco_ignore_mask", "evaluate_keypoints", "to_coco_results"]

# keys of evaluate_keypoints' result, in COCOeval.stats order for iouType="keypoints"
_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _pycocotools() -> tuple[Any, Any, Any]:
    """Import ``COCO``, ``COCOeval`` and ``pycocotools.mask``, or explain how to install them."""
    try:
        from pycocotools import mask
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:  # pragma: no cover - exercised only without pycocotools
        raise ImportError(
            "associative_embedding.coco needs pycocotools: "
            "pip install 'associative-embedding[coco]'"
        ) from exc
    return COCO, COCOeval, mask


# --------------------------------------------------------------------------- to_coco_results


def _as_keypoints(poses: Any) -> np.ndarray:
    has_attr = hasattr(poses, "keypoints")
    kp = poses.keypoints if has_attr else poses
    label = "poses.keypoints" if has_attr else "poses"
    kp = host(kp)
    if not isinstance(kp, np.ndarray):
        raise TypeError(
            f"poses must be a Poses (one image) or a numpy.ndarray of shape (P, K, 3), "
            f"got {type(kp).__name__}"
        )
    return check_pose_keypoints(kp, label)


def _apply_transform(transform: Any, xy: np.ndarray) -> np.ndarray:
    """Map ``(M, 2)`` points with a 2x3 affine matrix or a callable."""
    if transform is None:
        return xy
    if callable(transform):
        out = np.asarray(transform(xy.copy()), dtype=np.float64)
        if out.shape != xy.shape:
            raise ValueError(
                f"transform must return an array of shape (M, 2) like its input, got shape "
                f"{shape_str(out.shape)} for an input of shape {shape_str(xy.shape)}"
            )
        if not np.isfinite(out).all():
            raise ValueError("transform returned NaN or infinite coordinates")
        return out
    transform = host(transform)
    if not isinstance(transform, np.ndarray):
        raise TypeError(
            "transform must be None, a numpy.ndarray of shape (2, 3) or a callable, "
            f"got {type(transform).__name__}"
        )
    if transform.shape != (2, 3):
        raise ValueError(
            f"transform must be a 2x3 affine matrix, got shape {shape_str(transform.shape)}"
        )
    if transform.dtype.kind not in "fiu":
        raise TypeError(f"transform must have a real dtype, got {transform.dtype}")
    if not np.isfinite(transform).all():
        raise ValueError("transform contains NaN or infinite values")
    m = transform.astype(np.float64)
    return xy @ m[:, :2].T + m[:, 2]


def to_coco_results(
    poses: Any,
    image_id: int,
    transform: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    category_id: int = 1,
    scores: Any = None,
    missing: str = "mean",
) -> list[dict[str, Any]]:
    """Write the people of one image as COCO keypoint results.

    Parameters
    ----------
    poses : Poses or ndarray, shape (P, K, 3)
        The people of one image: an object with a ``keypoints`` attribute (one
        element of the list :func:`~associative_embedding.decode` returns,
        whose ``scores`` are then used) or the keypoints themselves,
        ``x, y, score`` per joint. A joint is detected if its coordinates are
        finite and its score is above 0. People without a detected joint are
        left out.
    image_id : int
        The image's ``id`` in the ground-truth file.
    transform : ndarray of shape (2, 3), callable or None, default None
        Maps keypoint coordinates to the ground truth's image pixels: a 2x3
        affine matrix ``A`` (``[x', y'] = A @ [x, y, 1]``, for example the
        inverse of the crop-and-resize that made the network's input, times the
        network's stride), or a function from an ``(M, 2)`` array of ``x, y`` to
        an ``(M, 2)`` array. ``None`` writes the coordinates as they are. No
        half-pixel shift is added: make ``transform`` agree with the pixel
        convention of your ground truth.
    category_id : int, default 1
        COCO category of the results (1 is ``person``).
    scores : array_like, shape (P,), optional
        Person scores. Default: ``poses.scores`` if ``poses`` has that
        attribute, otherwise the mean of the K joint scores (missing joints
        count as 0), which is how the reference decoders score people.
    missing : {"mean", "zero"}, default "mean"
        Where to put joints that were not detected. pycocotools scores every
        predicted joint against every labeled ground-truth joint, whatever the
        prediction's visibility flag, so a missing joint must still be placed
        somewhere. ``"mean"`` puts it at the mean of the person's detected
        joints (pose-ae-train's ``genDtByPred``); ``"zero"`` writes
        ``0, 0, 0`` (pose-ae-demo), which also stretches the box pycocotools
        derives from the keypoints and so the person's area.

    Returns
    -------
    list of dict
        One dict per written person, in the order of ``poses``:
        ``{"image_id": int, "category_id": int, "keypoints": [x1, y1, v1, ...,
        xK, yK, vK], "score": float}`` with plain Python numbers, where ``v`` is
        1 for a detected joint and 0 for a missing one. Extend one list over
        all images and pass it to :func:`evaluate_keypoints` or
        :func:`json.dump`.

    Raises
    ------
    TypeError
        If ``poses``, ``image_id``, ``category_id``, ``scores`` or
        ``transform`` has the wrong kind or dtype.
    ValueError
        If a shape is wrong, ``poses`` holds infinity or NaN scores, ``scores``
        is not finite, ``transform`` is not finite or returns a wrong shape, or
        ``missing`` is unknown.

    See Also
    --------
    evaluate_keypoints : OKS average precision of these results.

    Notes
    -----
    With the decoder's default ``refine=True`` every joint of every person is
    filled in, so ``missing`` matters only for ``refine=False``.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> person = np.zeros((1, 17, 3))
    >>> person[0, :, :] = [10.5, 20.5, 0.5]  # every joint at one place, heatmap pixels
    >>> person[0, 3] = [np.nan, np.nan, 0.0]  # the left ear was not found
    >>> stride4 = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # heatmap -> image pixels
    >>> (result,) = ae.to_coco_results(person, image_id=42, transform=stride4)
    >>> result["image_id"], result["category_id"], round(result["score"], 4)
    (42, 1, 0.4706)
    >>> result["keypoints"][:12]
    [42.0, 82.0, 1, 42.0, 82.0, 1, 42.0, 82.0, 1, 42.0, 82.0, 0]
    """
    kp = _as_keypoints(poses)
    image = check_int(image_id, "image_id")
    category = check_int(category_id, "category_id")
    check_choice(missing, "missing", ("mean", "zero"))
    p_, k_ = kp.shape[:2]

    if scores is None:
        scores = getattr(poses, "scores", None)
        label = "poses.scores"
    else:
        label = "scores"
    if scores is None:
        person_scores = kp[..., 2].mean(axis=1) if k_ else np.zeros(p_)
    else:
        person_scores = np.asarray(host(scores))
        if person_scores.dtype.kind not in "fiu":
            raise TypeError(f"{label} must be real numbers, got dtype {person_scores.dtype}")
        if person_scores.shape != (p_,):
            raise ValueError(
                f"{label} must have shape (P,) = ({p_},), "
                f"got shape {shape_str(person_scores.shape)}"
            )
        if not np.isfinite(person_scores).all():
            raise ValueError(f"{label} contains NaN or infinite values")
        person_scores = person_scores.astype(np.float64)

    detected = np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1]) & (kp[..., 2] > 0)
    results: list[dict[str, Any]] = []
    for p in range(p_):
        found = detected[p]
        if not found.any():
            continue
        xy = np.zeros((k_, 2))
        xy[found] = _apply_transform(transform, kp[p, found, :2])
        if missing == "mean":
            xy[~found] = xy[found].mean(axis=0)
        flat: list[float | int] = []
        for (x, y), v in zip(xy.tolist(), found.tolist(), strict=True):
            flat += [x, y, int(v)]
        results.append(
            {
                "image_id": image,
                "category_id": category,
                "keypoints": flat,
                "score": float(person_scores[p]),
            }
        )
    return results


# --------------------------------------------------------------------------- evaluate_keypoints


def _load_gt(gt_json: Any, coco_cls: Any) -> Any:
    if isinstance(gt_json, coco_cls):
        return gt_json
    if isinstance(gt_json, str | os.PathLike):
        with open(gt_json) as f:
            dataset = json.load(f)
    elif isinstance(gt_json, Mapping):
        dataset = copy.deepcopy(dict(gt_json))
    else:
        raise TypeError(
            "gt_json must be a path, a dict in COCO format or a pycocotools COCO object, "
            f"got {type(gt_json).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"gt_json must have an {key!r} list (COCO format), it has not")
    _check_annotations(dataset["annotations"])
    gt = coco_cls()
    gt.dataset = dataset
    gt.createIndex()
    return gt


_AREA_HINT = (
    "'area' is the person's size in image pixels² that OKS scales its tolerance by: COCO "
    "gives the segmentation mask's area; for data without masks, the area of the box around "
    "the person (bbox width * height) is the usual stand-in (HigherHRNet's CrowdPose and "
    "the MPII conversions use it); a larger area tolerates larger errors"
)


def _check_annotations(annotations: Any) -> None:
    """Raise ``ValueError`` for a ground-truth person lacking a key pycocotools reads."""
    annotations = _dicts(annotations, "gt_json['annotations']", "a list of dicts")
    for i, ann in enumerate(annotations):
        for key in ("image_id", "keypoints", "num_keypoints", "bbox", "area"):
            if key in ann:
                continue
            hint = f"; {_AREA_HINT}" if key == "area" else ""
            raise ValueError(
                f"gt_json['annotations'][{i}] (id {ann.get('id', '?')}) has no {key!r} entry, "
                f"which COCO's keypoint evaluation needs{hint}"
            )


def _dicts(items: Any, name: str, expected: str) -> list[Mapping[str, Any]]:
    """Check that ``items`` is a sequence of dicts; ``expected`` describes it in errors."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise TypeError(f"{name} must be {expected}, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(item).__name__}")
    return list(items)


def _load_results(results: Any) -> list[dict[str, Any]]:
    if isinstance(results, str | os.PathLike):
        with open(results) as f:
            results = json.load(f)
    results = _dicts(results, "results", "a list of dicts or a path to a JSON file")
    out = []
    for i, r in enumerate(results):
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise ValueError(f"results[{i}] has no {key!r} entry")
        # pycocotools writes into the dicts it is given: work on copies
        out.append({**r, "keypoints": list(r["keypoints"])})
    return out


def evaluate_keypoints(
    gt_json: Any,
    results: Any,
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    r"""Evaluate keypoint results against COCO ground truth with pycocotools.

    Parameters
    ----------
    gt_json : str, os.PathLike, dict or pycocotools.coco.COCO
        Ground truth in COCO format (a ``person_keypoints_*.json`` file, its
        loaded dict, or a ``COCO`` object). Annotations need ``image_id``,
        ``keypoints``, ``num_keypoints``, ``bbox`` and ``area`` (``iscrowd``
        is optional, 0 when absent), as in COCO. ``area`` is the person's
        size in image pixels² that OKS scales by: COCO's is the segmentation
        mask's area; without masks, use the area of the person's box
        (``bbox`` width times height), as HigherHRNet does for CrowdPose.
    results : list of dict, str or os.PathLike
        Results as :func:`to_coco_results` writes them (the lists of all
        images concatenated), or a JSON file holding such a list. Every
        ``image_id`` must be in the ground truth.
    sigmas : sequence of float, shape (K,), optional
        Per-joint OKS constants. Default: pycocotools' COCO values (the same as
        ``COCO_KEYPOINTS.sigmas``); give your own for other skeletons.
    image_ids : sequence of int, optional
        Evaluate these images only. Default: every image of the ground truth;
        images without results count as misses.
    verbose : bool, default False
        Let pycocotools print its progress and its summary table.

    Returns
    -------
    dict of str to float
        ``AP``, ``AP50``, ``AP75``, ``APm``, ``APl``, ``AR``, ``AR50``,
        ``AR75``, ``ARm``, ``ARl`` (``COCOeval.stats`` in order, at most 20
        people per image, areas: medium 32² to 96², large above 96² pixels²).
        A figure is NaN where it is undefined, because no ground-truth person
        falls in its area range (pycocotools prints -1 there).

    Raises
    ------
    TypeError
        If ``gt_json`` or ``results`` has the wrong kind.
    ValueError
        If the ground truth lacks a COCO list, an annotation lacks a key
        (``area`` included: nothing is guessed), a result lacks a key or names an
        image that is not in the ground truth, the keypoint count does not
        match ``sigmas``, ``sigmas`` is not positive and finite, or
        ``image_ids`` names an unknown image.

    See Also
    --------
    to_coco_results : Results in the form this function reads.

    Notes
    -----
    An empty ``results`` list (a model that finds nobody) gives AP and AR 0
    wherever ground truth exists. pycocotools' own ``loadRes`` fails on an
    empty list; here the evaluation runs on an empty result set instead.

    OKS of a prediction and a ground-truth person with area :math:`s` is
    :math:`\sum_k \exp(-d_k^2 / (2 s (2\sigma_k)^2)) / n` over the ``n``
    joints labeled in the ground truth; AP averages over OKS thresholds
    0.50, 0.55, ..., 0.95.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> gt_person = np.zeros((17, 3))
    >>> gt_person[:, 0] = np.linspace(40, 80, 17)  # x
    >>> gt_person[:, 1] = np.linspace(20, 180, 17)  # y
    >>> gt_person[:, 2] = 2  # labeled and visible
    >>> gt = {
    ...     "images": [{"id": 1, "width": 200, "height": 200}],
    ...     "categories": [{"id": 1, "name": "person"}],
    ...     "annotations": [{
    ...         "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
    ...         "keypoints": gt_person.ravel().tolist(), "num_keypoints": 17,
    ...         "bbox": [40, 20, 40, 160], "area": 6400.0,
    ...     }],
    ... }
    >>> prediction = gt_person.copy()
    >>> prediction[:, 2] = 0.9  # scores
    >>> results = ae.to_coco_results(prediction[None], image_id=1)
    >>> stats = ae.evaluate_keypoints(gt, results)
    >>> round(stats["AP"], 6), round(stats["AR"], 6)
    (1.0, 1.0)
    >>> float(np.isnan(stats["APl"]))  # no large person in this ground truth
    1.0
    """
    coco_cls, cocoeval_cls, _ = _pycocotools()
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = _load_gt(gt_json, coco_cls)
    dets = _load_results(results)

    known = set(gt.getImgIds())
    unknown = sorted({d["image_id"] for d in dets} - known, key=str)
    if unknown:
        raise ValueError(
            f"results name image ids that are not in gt_json: {unknown[:10]}"
            + (" ..." if len(unknown) > 10 else "")
        )
    if image_ids is not None:
        ids = [check_int(i, "image_ids") for i in image_ids]
        missing_ids = sorted(set(ids) - known)
        if missing_ids:
            raise ValueError(f"image_ids are not in gt_json: {missing_ids[:10]}")
    if sigmas is not None:
        sig = np.asarray(sigmas)
        if sig.ndim != 1 or sig.dtype.kind not in "fiu":
            raise ValueError(f"sigmas must be a 1-D sequence of numbers, got {sigmas!r}")
        if not (np.isfinite(sig).all() and (sig > 0).all()):
            raise ValueError("sigmas must be positive and finite")
        num_joints = len(sig)
    else:
        sig = None
        num_joints = 17
    for i, d in enumerate(dets):
        if len(d["keypoints"]) != 3 * num_joints:
            raise ValueError(
                f"results[{i}]['keypoints'] must hold 3 * K = {3 * num_joints} numbers "
                f"(K from sigmas), got {len(d['keypoints'])}"
            )
        if not isinstance(d["score"], numbers.Real):
            raise TypeError(f"results[{i}]['score'] must be a number, got {d['score']!r}")

    with quiet:
        if dets:
            dt = gt.loadRes(dets)
        else:
            dt = coco_cls()
            dt.dataset = {
                "images": list(gt.dataset["images"]),
                "categories": copy.deepcopy(gt.dataset["categories"]),
                "annotations": [],
            }
            dt.createIndex()
        evaluator = cocoeval_cls(gt, dt, "keypoints")
        if sig is not None:
            evaluator.params.kpt_oks_sigmas = sig.astype(np.float64)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats]
    return {
        name: (float("nan") if s == -1 else s) for name, s in zip(_STAT_NAMES, stats, strict=True)
    }


# --------------------------------------------------------------------------- coco_ignore_mask


def _segmentation_rles(seg: Any, label: str, height: int, width: int, mask_utils: Any) -> list:
    """Return the RLEs of one ``segmentation``: polygons, uncompressed or compressed RLE."""
    if isinstance(seg, Mapping):
        if "counts" not in seg or "size" not in seg:
            raise ValueError(f"{label} must have 'counts' and 'size' entries (an RLE dict)")
        size = [int(v) for v in seg["size"]]
        if size != [height, width]:
            raise ValueError(
                f"{label} has size {size} but the image has height, width = ({height}, {width})"
            )
        counts = seg["counts"]
        if isinstance(counts, str | bytes):  # compressed RLE, as pycocotools writes it
            return [{"size": size, "counts": counts}]
        total = int(np.sum(counts))
        if total != height * width:
            raise ValueError(
                f"{label} has counts that sum to {total}, not to the image's "
                f"{height * width} pixels"
            )
        return [mask_utils.frPyObjects({"size": size, "counts": list(counts)}, height, width)]
    if not isinstance(seg, Sequence) or isinstance(seg, str | bytes):
        raise TypeError(
            f"{label} must be a list of polygons (flat x, y lists) or an RLE dict, "
            f"got {type(seg).__name__}"
        )
    polygons = []
    for i, poly in enumerate(seg):
        xy = np.asarray(poly, dtype=np.float64)
        if xy.ndim != 1 or xy.size < 6 or xy.size % 2:
            raise ValueError(
                f"{label}[{i}] must be a flat list of x, y pairs (an even number of values, at "
                f"least 6), got {xy.size} value(s) of shape {shape_str(xy.shape)}"
            )
        if not np.isfinite(xy).all():
            raise ValueError(f"{label}[{i}] contains NaN or infinite coordinates")
        polygons.append(xy.tolist())
    return mask_utils.frPyObjects(polygons, height, width) if polygons else []


def _is_ignored(ann: Mapping, label: str) -> bool:
    """HigherHRNet's rule: a crowd, or a person with no labelled keypoint."""
    if ann.get("iscrowd", 0):
        return True
    if "num_keypoints" in ann:
        return int(ann["num_keypoints"]) == 0
    if "keypoints" in ann:
        return not (np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0).any()
    raise ValueError(
        f"{label} is not a crowd and has neither 'num_keypoints' nor 'keypoints': cannot "
        "tell whether its person is labelled"
    )


def coco_ignore_mask(
    annotations: Sequence[Mapping[str, Any]], height: int, width: int
) -> np.ndarray:
    """Build the loss mask of one image from its COCO annotations.

    The pixels of crowd regions (``iscrowd`` annotations) and of people without
    a labelled keypoint (``num_keypoints == 0``) are ignored: their heatmap
    targets are zero although people may be there. This is HigherHRNet's
    ``COCOKeypoints.get_mask`` (``lib/dataset/COCOKeypoints.py``), also
    mmpose's ``BottomupGetHeatmapMask``: the union of the decoded crowd RLEs
    and of the keypoint-less people's polygons, rasterised by pycocotools.

    Parameters
    ----------
    annotations : sequence of dict
        The COCO annotations of one image (for example
        ``coco.loadAnns(coco.getAnnIds(imgIds=image_id))``). Read: ``iscrowd``
        (default 0), ``num_keypoints`` (else counted from ``keypoints``,
        labelled where the visibility is above 0) and, for the ignored ones,
        ``segmentation``: polygons (a list of flat ``x, y`` lists, in image
        pixels) or an RLE dict (uncompressed ``counts`` list or compressed
        string) of size ``[height, width]``.
    height, width : int
        Image size in pixels.

    Returns
    -------
    ndarray of float32, shape (height, width)
        1.0 where the loss counts, 0.0 on ignored pixels, in image pixels: the
        ``mask`` convention of :class:`~associative_embedding.HeatmapLoss` and
        :class:`~associative_embedding.AssociativeEmbeddingLoss`. Warp and
        resize it like the image to the heatmaps' size, then re-binarise (the
        references threshold at 0.5).

    Raises
    ------
    TypeError
        If ``annotations`` is not a sequence of dicts, a size is not an
        integer, or a ``segmentation`` is neither polygons nor an RLE dict.
    ValueError
        If a size is below 1, an ignored annotation has no ``segmentation``, a
        polygon has an odd number of coordinates, fewer than three points or
        NaN/infinite ones, an RLE's size is not ``[height, width]`` or its
        counts do not cover the image, or a non-crowd annotation has neither
        ``num_keypoints`` nor ``keypoints``.

    See Also
    --------
    HeatmapLoss : Takes the mask (resized to the heatmaps) as ``mask``.

    Notes
    -----
    People with labelled keypoints are never masked, even where they overlap
    an ignored region's pixels only partly: the union covers exactly the
    ignored annotations' pixels. A crowd is ignored whatever its
    ``num_keypoints``. pose-ae-train (``data/coco_pose/ref.py``) masks crowds
    only; HigherHRNet and mmpose add the keypoint-less people, as here.

    Examples
    --------
    >>> import associative_embedding as ae
    >>> crowd = {"iscrowd": 1, "segmentation": {"counts": [0, 2, 4], "size": [2, 3]}}
    >>> ae.coco_ignore_mask([crowd], 2, 3)  # the first column is a crowd
    array([[0., 1., 1.],
           [0., 1., 1.]], dtype=float32)
    """
    height = check_int(height, "height", low=1)
    width = check_int(width, "width", low=1)
    annotations = _dicts(
        annotations, "annotations", "a sequence of dicts (the COCO annotations of one image)"
    )
    *_, mask_utils = _pycocotools()
    rles = []
    for i, ann in enumerate(annotations):
        label = f"annotations[{i}]"
        if not _is_ignored(ann, label):
            continue
        if "segmentation" not in ann:
            raise ValueError(
                f"{label} is ignored (crowd or no keypoints) but has no 'segmentation'"
            )
        rles += _segmentation_rles(
            ann["segmentation"], f"{label}['segmentation']", height, width, mask_utils
        )
    ignored = np.zeros((height, width), dtype=bool)
    if rles:
        with warnings.catch_warnings():
            # pycocotools' decode trips numpy 2's __array__ copy-keyword deprecation
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            ignored = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    return (~ignored).astype(np.float32)
