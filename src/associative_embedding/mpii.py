"""MPII Multi-Person pose AP, the measure of Newell et al. 2017's Table 1.

The MPII Human Pose multi-person benchmark (Pishchulin et al., "DeepCut: Joint
Subset Partition and Labeling for Multi Person Pose Estimation", CVPR 2016)
scores every predicted joint as one detection: predicted people are matched to
the ground-truth people of their group by PCKh, each predicted joint is a true
positive if it lies within half a head size of the same joint of the person it
was matched to, and the detections of each joint type, ranked by their
scores over the whole test set, give a precision-recall curve and an average
precision. This module reimplements the MPII evaluation toolkit's MATLAB code
(``evaluateAP.m``, ``assignGTmulti.m``, ``getRPC.m``, ``VOCap.m``,
``genTableAP.m``, ``util_get_head_size.m``) in numpy, rule for rule; numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_choice, shape_str

__all__ = ["MPIIResult", "evaluate_mpii"]

#: The toolkit's 14 evaluated joints, as MPII joint ids (= rows of ``MPII_KEYPOINTS``),
#: in its order (``assignGTmulti.m``'s ``jidxMap``): pelvis (6) and thorax (7) are not
#: evaluated.
EVALUATED_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)

#: Table 1 columns as pairs of MPII joint ids (``genTableAP.m``): each column is the mean
#: of the two joints' AP; "Total" is the mean over the 14 evaluated joints.
TABLE_COLUMNS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("Head", (8, 9)),
    ("Shoulder", (12, 13)),
    ("Elbow", (11, 14)),
    ("Wrist", (10, 15)),
    ("Hip", (2, 3)),
    ("Knee", (1, 4)),
    ("Ankle", (0, 5)),
)

#: ``util_get_head_size.m``: the head size is 0.6 times the head rectangle's diagonal.
HEAD_SIZE_FACTOR = 0.6
#: ``evaluateAP.m``: a joint is correct within half a head size (PCKh@0.5).
PCKH_THRESHOLD = 0.5
_NUM_JOINTS = 16


@dataclass(frozen=True, slots=True)
class MPIIResult:
    """The MPII multi-person AP of a set of predictions, in percent.

    Parameters
    ----------
    ap : dict of str to float
        AP of each of the 14 evaluated joints, keyed by its name in
        ``MPII_KEYPOINTS`` (pelvis and thorax are not evaluated), in percent.
        NaN for a joint that has predictions but no annotated ground truth.
    columns : dict of str to float
        The toolkit's table, in percent: ``Head`` (upper neck and head top),
        ``Shoulder``, ``Elbow``, ``Wrist``, ``Hip``, ``Knee``, ``Ankle`` (each
        the mean of the left and right joint) and ``Total`` (the mean over the
        14 joints).
    num_ground_truth : dict of str to int
        Number of annotated ground-truth joints of each evaluated joint type.

    See Also
    --------
    evaluate_mpii : Computes it.
    """

    ap: dict[str, float]
    columns: dict[str, float]
    num_ground_truth: dict[str, int]

    def format_table(self, name: str = "") -> str:
        """Return the table as the toolkit's ``genTableAP`` prints it (header, row).

        Parameters
        ----------
        name : str, default ""
            Row label.

        Returns
        -------
        str
            Two lines: the column names and the values with one decimal.
        """
        header = " &" + " & ".join(self.columns) + " \\\\"
        row = name + "& " + "  & ".join(f"{v:.1f}" for v in self.columns.values()) + " \\\\"
        return header + "\n" + row


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_ground_truth(group: Any, g: int) -> tuple[np.ndarray, np.ndarray]:
    name = f"ground_truth[{g}]"
    if not isinstance(group, Mapping):
        raise TypeError(
            f"{name} must be a mapping with 'keypoints' (N, 16, 3) and 'head_boxes' (N, 4), "
            f"got {type(group).__name__}"
        )
    for key in ("keypoints", "head_boxes"):
        if key not in group:
            raise ValueError(f"{name} has no {key!r} entry")
    kp = _as_float_array(group["keypoints"], f"{name}['keypoints']")
    boxes = _as_float_array(group["head_boxes"], f"{name}['head_boxes']")
    if kp.ndim != 3 or kp.shape[1:] != (_NUM_JOINTS, 3):
        raise ValueError(
            f"{name}['keypoints'] must have shape (N, 16, 3) holding x, y, annotated, "
            f"got shape {shape_str(kp.shape)}"
        )
    if boxes.shape != (kp.shape[0], 4):
        raise ValueError(
            f"{name}['head_boxes'] must have shape (N, 4) = x1, y1, x2, y2 with "
            f"N = {kp.shape[0]}, got shape {shape_str(boxes.shape)}"
        )
    if np.isnan(kp[..., 2]).any():
        raise ValueError(f"{name}['keypoints'] has NaN annotated flags (use 0 or 1)")
    annotated = kp[..., 2] > 0
    if not np.isfinite(kp[..., :2][annotated]).all():
        raise ValueError(f"{name}['keypoints'] has NaN or infinite coordinates of annotated joints")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name}['head_boxes'] contains NaN or infinite values")
    head = _head_sizes(boxes)
    if (head <= 0).any():
        raise ValueError(f"{name}['head_boxes'] has a head rectangle of size 0")
    return kp, boxes


def _check_prediction(pred: Any, g: int) -> np.ndarray:
    name = f"predictions[{g}]"
    kp = getattr(pred, "keypoints", pred)
    if not isinstance(kp, np.ndarray):
        raise TypeError(f"{name} must be an ndarray (P, 16, 3) or Poses, got {type(pred).__name__}")
    kp = _as_float_array(kp, name)
    if kp.ndim != 3 or kp.shape[1:] != (_NUM_JOINTS, 3):
        raise ValueError(
            f"{name} must have shape (P, 16, 3) holding x, y, score, "
            f"got shape {shape_str(kp.shape)}"
        )
    xy = kp[..., :2]
    if np.isinf(xy).any():
        raise ValueError(f"{name} has infinite coordinates (use NaN for a missing joint)")
    if (np.isnan(xy[..., 0]) != np.isnan(xy[..., 1])).any():
        raise ValueError(f"{name} has a joint with one NaN coordinate (both or neither)")
    present = ~np.isnan(xy[..., 0])
    if not np.isfinite(kp[..., 2][present]).all():
        raise ValueError(f"{name} has NaN or infinite scores of predicted joints")
    return kp


def _head_sizes(boxes: np.ndarray) -> np.ndarray:
    dx = boxes[:, 2] - boxes[:, 0]
    dy = boxes[:, 3] - boxes[:, 1]
    return HEAD_SIZE_FACTOR * np.sqrt(dx * dx + dy * dy)


def _assign_group(
    gt: np.ndarray, boxes: np.ndarray, pred: np.ndarray, empty_groups: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One group: (scores, labels, has_pred) of every predicted joint, and GT counts.

    Returns ``scores (P, 14)``, ``labels (P, 14)`` bool, ``has_pred (P, 14)`` bool and
    ``n_gt (14,)``: the toolkit's ``assignGTmulti`` for one image.
    """
    joints = list(EVALUATED_JOINTS)
    g = gt[:, joints]  # (N, 14, 3)
    p = pred[:, joints]  # (P, 14, 3)
    has_gt = g[..., 2] > 0
    n_gt = has_gt.sum(axis=0)
    n, m = g.shape[0], p.shape[0]
    has_pred = ~np.isnan(p[..., 0])
    if empty_groups == "toolkit" and (n == 0 or m == 0):
        # assignGTmulti.m reads both the predicted and the annotated joints inside its
        # loop over (prediction, person) pairs: a group without one or the other adds
        # neither detections nor positives
        none = np.zeros((m, len(joints)), dtype=bool)
        return p[..., 2], none, none, np.zeros_like(n_gt)
    if n == 0:  # every prediction is a false positive
        return p[..., 2], np.zeros((m, len(joints)), dtype=bool), has_pred, n_gt
    dx = g[None, :, :, 0] - p[:, None, :, 0]
    dy = g[None, :, :, 1] - p[:, None, :, 1]
    head = _head_sizes(boxes)
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(dx * dx + dy * dy) / head[None, :, None]
    both = has_pred[:, None, :] & has_gt[None, :, :]
    dist = np.where(both, dist, np.inf)
    match = dist <= PCKH_THRESHOLD  # (P, N, 14)
    n_gt_person = has_gt.sum(axis=1)  # (N,)
    counts = match.sum(axis=2).astype(np.float64)
    # the toolkit's 0/0 for a person without annotated joints is NaN, which MATLAB's max
    # skips; 0 gives the same assignment (see tests)
    pck = np.divide(
        counts,
        n_gt_person[None, :],
        out=np.zeros_like(counts),
        where=n_gt_person[None, :] > 0,
    )
    if m:
        best = np.argmax(pck, axis=1)  # each prediction keeps its best person only
        keep = np.zeros_like(pck, dtype=bool)
        keep[np.arange(m), best] = True
        pck = np.where(keep, pck, 0.0)
        pred_to_gt = np.argmax(pck, axis=0)  # each person keeps its best prediction
        pred_to_gt[pck.max(axis=0) == 0] = -1
    else:
        pred_to_gt = np.full(n, -1)
    labels = np.zeros((m, len(joints)), dtype=bool)
    for j in np.flatnonzero(pred_to_gt >= 0):
        labels[pred_to_gt[j]] = match[pred_to_gt[j], j]
    return p[..., 2], labels & has_pred, has_pred, n_gt


def _average_precision(scores: np.ndarray, labels: np.ndarray, total: int) -> float:
    """``getRPC.m`` + ``VOCap.m``: AP of detections ranked by score (stable for ties)."""
    order = np.argsort(-scores, kind="stable")  # MATLAB's sort(..., 'descend') is stable
    npos = np.cumsum(labels[order].astype(np.float64))
    rank = np.arange(1, len(order) + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = npos / np.float64(total)
    precision = npos / rank
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    terms = (mrec[i] - mrec[i - 1]) * mpre[i]
    # MATLAB's sum, left to right (np.sum's pairwise order rounds differently)
    return float(np.cumsum(terms)[-1]) * 100.0 if len(terms) else 0.0


def evaluate_mpii(
    ground_truth: Sequence[Any], predictions: Sequence[Any], *, empty_groups: str = "toolkit"
) -> MPIIResult:
    r"""MPII Multi-Person AP (Pishchulin et al.'s measure, Newell et al. 2017 Table 1).

    A reimplementation of the MPII Human Pose toolkit's ``evaluateAP.m``. Per
    group (the unit the benchmark evaluates: the people of one image that are
    estimated together), every predicted person is matched to at most one
    ground-truth person and vice versa, by PCKh; each predicted joint, with its
    score, is then a true positive if it lies within ``0.5`` head sizes of the
    same joint of its matched person, else a false positive. Per joint type,
    all detections of all groups ranked by score give the AP.

    Parameters
    ----------
    ground_truth : sequence of mapping, length G
        One entry per group, with:

        - ``"keypoints"``: array_like, shape (N, 16, 3), the ``x``, ``y`` and
          annotated flag of each joint of the group's N people, in
          ``MPII_KEYPOINTS`` order and image pixels. A flag > 0 marks an
          annotated joint (the toolkit counts every annotated joint, visible or
          not); coordinates of unannotated joints are ignored (may be NaN).
        - ``"head_boxes"``: array_like, shape (N, 4), each person's head
          rectangle ``x1, y1, x2, y2`` in image pixels.
    predictions : sequence of ndarray or Poses, length G
        One entry per group: the ``x``, ``y`` and score of each predicted joint,
        shape (P, 16, 3), in ``MPII_KEYPOINTS`` order and the same image pixels
        as the ground truth (a :class:`Poses` mapped to image pixels works). A
        joint with NaN coordinates is not predicted; the score of a predicted
        joint must be finite.
    empty_groups : {"toolkit", "count"}, default "toolkit"
        A group without predictions, or without ground-truth people:
        ``"toolkit"`` does what ``assignGTmulti.m`` does, which reads both the
        predicted and the annotated joints inside its loop over (prediction,
        person) pairs, so such a group adds neither detections nor positives
        (its people cannot be missed, its predictions are not false
        positives). ``"count"`` counts the annotated joints of a group without
        predictions as positives and the predictions of a group without people
        as false positives, as leonid-pishchulin/poseval's Python port does.
        The two agree whenever every group has people and predictions.

    Returns
    -------
    MPIIResult
        Per-joint AP and the Table 1 columns, in percent as the toolkit prints
        them.

    Raises
    ------
    TypeError
        If the arguments are not sequences, a group is not a mapping, or an
        array is not real-valued.
    ValueError
        If the lengths differ, ``empty_groups`` is unknown, a shape is wrong,
        a head rectangle has size 0, an annotated joint or a predicted joint
        has a non-finite coordinate or score.

    See Also
    --------
    evaluate_keypoints : The COCO measure.

    Notes
    -----
    The rules, from the toolkit's MATLAB code:

    - Head size: :math:`0.6\,\lVert (x_2, y_2) - (x_1, y_1) \rVert` of the
      head rectangle.
    - Only 14 joints are evaluated: pelvis and thorax are not.
    - PCKh of a predicted person against a ground-truth person: the fraction
      of the person's annotated joints that have a prediction within
      ``0.5`` head sizes (0 for a person without annotated joints). Each
      prediction keeps only its best person (the first on ties), then each
      person takes the prediction with the highest remaining PCKh (the first
      on ties); a PCKh of 0 matches nothing.
    - Every predicted joint is a detection, matched or not; the number of
      positives is the number of annotated joints.
    - Ranking is by score, descending; equal scores keep their order (group
      order, then prediction order), as MATLAB's stable ``sort`` does.
    - AP is the area under the precision-recall curve made monotone (the
      PASCAL VOC rule of ``VOCap.m``), times 100; a joint type with
      detections but no annotated joint gets NaN (the toolkit's 0/0).
    - Groups without predictions or without people: see ``empty_groups``.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import evaluate_mpii
    >>> rng = np.random.default_rng(0)
    >>> people = np.concatenate([rng.uniform(0, 100, (2, 16, 2)), np.ones((2, 16, 1))], -1)
    >>> heads = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 0.0, 60.0, 10.0]])
    >>> gt = [{"keypoints": people, "head_boxes": heads}]
    >>> perfect = people.copy()                  # x, y right, score 1
    >>> evaluate_mpii(gt, [perfect]).columns["Total"]
    100.0
    >>> evaluate_mpii(gt, [np.zeros((0, 16, 3))]).columns["Total"]
    0.0
    """
    for name, arg in (("ground_truth", ground_truth), ("predictions", predictions)):
        if isinstance(arg, (str, bytes, Mapping)) or not isinstance(arg, Sequence):
            raise TypeError(
                f"{name} must be a sequence with one entry per group, got {type(arg).__name__}"
            )
    if len(ground_truth) != len(predictions):
        raise ValueError(
            f"ground_truth and predictions must have one entry per group each, got "
            f"{len(ground_truth)} and {len(predictions)}"
        )
    check_choice(empty_groups, "empty_groups", ("toolkit", "count"))
    n_joints = len(EVALUATED_JOINTS)
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    n_gt = np.zeros(n_joints, dtype=np.int64)
    for g, (group, pred) in enumerate(zip(ground_truth, predictions, strict=True)):
        kp, boxes = _check_ground_truth(group, g)
        pr = _check_prediction(pred, g)
        s, lab, has, count = _assign_group(kp, boxes, pr, empty_groups)
        # column-major within a group: joint j's detections in prediction order
        scores.append(np.where(has, s, np.nan))
        labels.append(lab)
        n_gt += count
    all_scores = np.concatenate(scores) if scores else np.zeros((0, n_joints))
    all_labels = np.concatenate(labels) if labels else np.zeros((0, n_joints), dtype=bool)
    from .skeletons import MPII_KEYPOINTS

    names = [MPII_KEYPOINTS.keypoints[j] for j in EVALUATED_JOINTS]
    ap: dict[str, float] = {}
    for j, joint_name in enumerate(names):
        present = ~np.isnan(all_scores[:, j])
        ap[joint_name] = _average_precision(
            all_scores[present, j], all_labels[present, j], int(n_gt[j])
        )
    by_id = {EVALUATED_JOINTS[j]: ap[names[j]] for j in range(n_joints)}
    columns = {col: (by_id[a] + by_id[b]) / 2 for col, (a, b) in TABLE_COLUMNS}
    total = 0.0
    for v in ap.values():  # MATLAB's mean: a left-to-right sum
        total += v
    columns["Total"] = total / n_joints
    counts = {joint_name: int(n_gt[j]) for j, joint_name in enumerate(names)}
    return MPIIResult(ap=ap, columns=columns, num_ground_truth=counts)
