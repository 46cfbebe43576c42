"""evaluate_mpii against a line-by-line transcription of the MPII toolkit, and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import associative_embedding as ae
from associative_embedding.mpii import EVALUATED_JOINTS

# --------------------------------------------------------------------------------------
# The oracle: the MPII toolkit's MATLAB code (assignGTmulti.m, getRPC.m, VOCap.m,
# evaluateAP.m, genTableAP.m, util_get_head_size.m), transcribed loop for loop with
# 1-based indices turned 0-based. Slow and plain on purpose.
# --------------------------------------------------------------------------------------


def _oracle_head_size(box):
    x1, y1, x2, y2 = (float(v) for v in box)
    return 0.6 * math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1))


def _oracle_assign(pred, gt, empty_groups):
    """assignGTmulti.m: pred / gt are lists (images) of lists (rects) of dicts id -> point.

    ``empty_groups="count"`` reads the annotated joints outside the loop over predictions
    and makes every prediction of a group without people a false positive (poseval's
    eval_helpers.py::assignGTmulti); "toolkit" is the MATLAB code as it is.
    """
    n_joints = 14
    jidx_map = list(EVALUATED_JOINTS)
    scores_all = [[[] for _ in gt] for _ in range(n_joints)]
    labels_all = [[[] for _ in gt] for _ in range(n_joints)]
    n_gt_all = [[0] * len(gt) for _ in range(n_joints)]
    for imgidx in range(len(gt)):
        n_pred, n_gt = len(pred[imgidx]["rects"]), len(gt[imgidx]["rects"])
        dist = [[[math.inf] * n_joints for _ in range(n_gt)] for _ in range(n_pred)]
        score = [[math.nan] * n_joints for _ in range(n_pred)]
        has_pred = [[False] * n_joints for _ in range(n_pred)]
        has_gt = [[False] * n_joints for _ in range(n_gt)]
        if empty_groups == "count":
            for rg in range(n_gt):
                for i in range(n_joints):
                    if gt[imgidx]["rects"][rg]["points"].get(jidx_map[i]) is not None:
                        has_gt[rg][i] = True
            if n_gt == 0:
                for rp in range(n_pred):
                    for i in range(n_joints):
                        pp = pred[imgidx]["rects"][rp].get(jidx_map[i])
                        if pp is not None:
                            scores_all[i][imgidx].append(pp[2])
                            labels_all[i][imgidx].append(False)
        for rp in range(n_pred):
            points_pred = pred[imgidx]["rects"][rp]
            for rg in range(n_gt):
                rect_gt = gt[imgidx]["rects"][rg]
                ref_dist = _oracle_head_size(rect_gt["head"])
                points_gt = rect_gt["points"]
                for i in range(n_joints):
                    pp = points_pred.get(jidx_map[i])
                    if pp is not None:
                        score[rp][i] = pp[2]
                        has_pred[rp][i] = True
                    pg = points_gt.get(jidx_map[i])
                    if pg is not None:
                        has_gt[rg][i] = True
                    if has_pred[rp][i] and has_gt[rg][i]:
                        dx, dy = pg[0] - pp[0], pg[1] - pp[1]
                        dist[rp][rg][i] = math.sqrt(dx * dx + dy * dy) / ref_dist
        # pck = sum(match, 3) ./ nGT, MATLAB's 0/0 = NaN skipped by max
        match = [[[d <= 0.5 for d in dist[rp][rg]] for rg in range(n_gt)] for rp in range(n_pred)]
        pck = [[math.nan] * n_gt for _ in range(n_pred)]
        for rp in range(n_pred):
            for rg in range(n_gt):
                c = sum(match[rp][rg])
                ng = sum(has_gt[rg])
                pck[rp][rg] = c / ng if ng else (math.nan if c == 0 else math.inf)

        def nanmax(values):  # MATLAB max: skips NaN, first index on ties, NaN if all NaN
            best, arg = math.nan, 0
            for k, v in enumerate(values):
                if not math.isnan(v) and (math.isnan(best) or v > best):
                    best, arg = v, k
            return best, arg

        for rp in range(n_pred):
            _, idx = nanmax(pck[rp])
            for rg in range(n_gt):
                if rg != idx:
                    pck[rp][rg] = 0.0
        pred_to_gt = []
        for rg in range(n_gt):
            val, arg = nanmax([pck[rp][rg] for rp in range(n_pred)])
            pred_to_gt.append(-1 if val == 0 else arg)
        for rp in range(n_pred):
            if rp in pred_to_gt and n_pred:
                rg = pred_to_gt.index(rp)
                m = match[rp][rg]
            else:
                m = [False] * n_joints
            for i in range(n_joints):
                if has_pred[rp][i]:
                    scores_all[i][imgidx].append(score[rp][i])
                    labels_all[i][imgidx].append(m[i])
        for rg in range(n_gt):
            for i in range(n_joints):
                n_gt_all[i][imgidx] += int(has_gt[rg][i])
    return scores_all, labels_all, n_gt_all


def _oracle_rpc(scores, labels, total):
    """getRPC.m: MATLAB's sort(..., 'descend') is stable."""
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    npos = 0
    precision, recall = [], []
    for r, k in enumerate(order):
        if labels[k]:
            npos += 1
        precision.append(npos / (r + 1))
        recall.append(npos / total if total else (math.nan if npos == 0 else math.inf))
    return precision, recall


def _oracle_vocap(rec, prec):
    mrec = [0.0, *rec, 1.0]
    mpre = [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = 0.0
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:  # NaN != NaN is true, as in MATLAB
            ap += (mrec[i] - mrec[i - 1]) * mpre[i]
    return ap


def _oracle_evaluate(gt, pred, empty_groups="toolkit"):
    scores_all, labels_all, n_gt_all = _oracle_assign(pred, gt, empty_groups)
    ap = []
    for j in range(14):
        scores, labels = [], []
        for imgidx in range(len(gt)):
            scores += scores_all[j][imgidx]
            labels += labels_all[j][imgidx]
        precision, recall = _oracle_rpc(scores, labels, sum(n_gt_all[j]))
        ap.append(_oracle_vocap(recall, precision) * 100)
    total = 0.0
    for v in ap:
        total += v
    ap.append(total / 14)
    # genTableAP.m, 1-based indices into the 14 + total
    table = [
        (ap[12] + ap[13]) / 2,
        (ap[8] + ap[9]) / 2,
        (ap[7] + ap[10]) / 2,
        (ap[6] + ap[11]) / 2,
        (ap[2] + ap[3]) / 2,
        (ap[1] + ap[4]) / 2,
        (ap[0] + ap[5]) / 2,
        ap[14],
    ]
    return ap[:14], table


def _to_toolkit(gt_groups, pred_groups):
    """Our arrays -> the toolkit's annolist-like structures (points present or absent)."""
    gt, pred = [], []
    for group in gt_groups:
        rects = []
        for kp, head in zip(group["keypoints"], group["head_boxes"], strict=True):
            pts = {j: (kp[j, 0], kp[j, 1]) for j in range(16) if kp[j, 2] > 0}
            rects.append({"points": pts, "head": head})
        gt.append({"rects": rects})
    for kp in pred_groups:
        rects = []
        for person in kp:
            pts = {j: tuple(person[j]) for j in range(16) if not np.isnan(person[j, 0])}
            rects.append(pts)
        pred.append({"rects": rects})
    return gt, pred


# --------------------------------------------------------------------------------------


def _random_group(rng, n, p, *, near=True):
    centers = rng.uniform(0, 200, (n, 1, 2))
    kp = np.concatenate(
        [centers + rng.normal(0, 25, (n, 16, 2)), (rng.random((n, 16, 1)) < 0.85).astype(float)],
        axis=-1,
    )
    kp[rng.random(n) < 0.1, :, 2] = 0  # some people without any annotated joint
    top = rng.uniform(0, 200, (n, 2))
    heads = np.concatenate([top, top + rng.uniform(4, 20, (n, 2))], axis=1)
    if p and n and near:
        src = kp[rng.integers(0, n, p), :, :2]
        xy = src + rng.normal(0, rng.choice([1.0, 5.0, 15.0]), src.shape)
    else:
        xy = rng.uniform(0, 200, (p, 16, 2))
    # coarse scores make ties common, to exercise the tie order
    score = rng.integers(0, 4, (p, 16, 1)) / 4.0
    pred = np.concatenate([xy, score], axis=-1)
    pred[rng.random((p, 16)) < 0.15, :2] = np.nan
    return {"keypoints": kp, "head_boxes": heads}, pred


@pytest.mark.parametrize("empty_groups", ["toolkit", "count"])
@pytest.mark.parametrize("trial", range(25))
def test_equals_toolkit_transcription_on_random_inputs(rng, trial, empty_groups):
    groups = int(rng.integers(1, 6))
    gt, pred = [], []
    for _ in range(groups):
        g, p = _random_group(rng, int(rng.integers(0, 5)), int(rng.integers(0, 6)))
        gt.append(g)
        pred.append(p)
    result = ae.evaluate_mpii(gt, pred, empty_groups=empty_groups)
    ap, table = _oracle_evaluate(*_to_toolkit(gt, pred), empty_groups)
    got_ap = list(result.ap.values())
    np.testing.assert_array_equal(got_ap, ap)  # exact, NaN == NaN
    np.testing.assert_array_equal(list(result.columns.values()), table)


def _people(rng, n=3):
    kp = np.concatenate([rng.uniform(0, 300, (n, 16, 2)), np.ones((n, 16, 1))], axis=-1)
    top = rng.uniform(0, 300, (n, 2))
    heads = np.concatenate([top, top + 20.0], axis=1)
    return kp, heads


def test_perfect_predictions_score_100(rng):
    kp, heads = _people(rng)
    result = ae.evaluate_mpii([{"keypoints": kp, "head_boxes": heads}], [kp.copy()])
    assert all(v == 100.0 for v in result.columns.values())
    assert list(result.columns) == [
        "Head",
        "Shoulder",
        "Elbow",
        "Wrist",
        "Hip",
        "Knee",
        "Ankle",
        "Total",
    ]
    assert set(result.ap) == {ae.MPII_KEYPOINTS.keypoints[j] for j in EVALUATED_JOINTS}
    assert "pelvis" not in result.ap and "thorax" not in result.ap
    assert result.num_ground_truth["head_top"] == 3


@pytest.mark.parametrize("empty_groups", ["toolkit", "count"])
def test_no_predictions_score_0(rng, empty_groups):
    kp, heads = _people(rng)
    gt = [{"keypoints": kp, "head_boxes": heads}]
    result = ae.evaluate_mpii(gt, [np.zeros((0, 16, 3))], empty_groups=empty_groups)
    assert all(v == 0.0 for v in result.columns.values())


def test_shuffled_people_score_100(rng):
    kp, heads = _people(rng, 4)
    pred = kp[rng.permutation(4)]
    result = ae.evaluate_mpii([{"keypoints": kp, "head_boxes": heads}], [pred])
    assert result.columns["Total"] == 100.0


def test_duplicated_person_is_a_false_positive_ranked_by_score(rng):
    kp, heads = _people(rng, 1)
    pred = np.concatenate([kp, kp])
    gt = [{"keypoints": kp, "head_boxes": heads}]
    # the duplicate scores lower: precision 1 at recall 1 first -> AP 100
    pred[1, :, 2] = 0.5
    assert ae.evaluate_mpii(gt, [pred]).columns["Total"] == 100.0
    # the duplicate scores higher: false positive first, then the hit -> AP 50
    pred[1, :, 2] = 2.0
    assert ae.evaluate_mpii(gt, [pred]).columns["Total"] == 50.0
    # equal scores: the first prediction wins the person (first index on PCKh ties), and
    # MATLAB's stable sort ranks it first too -> AP 100
    pred[1, :, 2] = 1.0
    assert ae.evaluate_mpii(gt, [pred]).columns["Total"] == 100.0
    # a stray person listed before the hit, at the same score: false positive first -> 50
    stray = pred.copy()
    stray[0, :, :2] += 500.0
    assert ae.evaluate_mpii(gt, [stray]).columns["Total"] == 50.0
    assert ae.evaluate_mpii(gt, [stray[::-1].copy()]).columns["Total"] == 100.0


def test_missing_joints_lower_recall_only(rng):
    kp, heads = _people(rng, 2)
    pred = kp.copy()
    pred[:, 9, :2] = np.nan  # no head-top predictions at all
    pred[0, 0, :2] = np.nan  # one right ankle missing: recall 1/2 at precision 1
    result = ae.evaluate_mpii([{"keypoints": kp, "head_boxes": heads}], [pred])
    assert result.ap["head_top"] == 0.0
    assert result.ap["right_ankle"] == 50.0
    assert result.ap["left_ankle"] == 100.0
    assert result.columns["Head"] == 50.0
    assert result.columns["Ankle"] == 75.0


def test_unannotated_gt_joints_are_not_positives(rng):
    kp, heads = _people(rng, 1)
    gt_kp = kp.copy()
    gt_kp[0, 10, 2] = 0  # right wrist not annotated: a prediction there is a false positive
    gt_kp[0, 10, :2] = np.nan
    result = ae.evaluate_mpii([{"keypoints": gt_kp, "head_boxes": heads}], [kp])
    assert math.isnan(result.ap["right_wrist"])  # detections but no positives: 0/0
    assert result.num_ground_truth["right_wrist"] == 0
    assert math.isnan(result.columns["Total"])


def test_pckh_threshold_is_half_the_head_size():
    kp = np.zeros((1, 16, 3))
    kp[..., 2] = 1
    kp[..., 0] = np.arange(16) * 100.0
    heads = np.array([[0.0, 0.0, 30.0, 40.0]])  # diagonal 50 -> head size 30
    pred = kp.copy()
    pred[0, 0, 0] += 15.0  # exactly 0.5 head sizes: still correct (<=)
    pred[0, 1, 0] += 15.000001  # just beyond
    result = ae.evaluate_mpii([{"keypoints": kp, "head_boxes": heads}], [pred])
    assert result.ap["right_ankle"] == 100.0
    assert result.ap["right_knee"] == 0.0


def test_empty_groups(rng):
    kp, heads = _people(rng, 2)
    empty = {"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}
    stray = kp + 1000.0
    stray[..., 2] = 9.0  # outranks the hits
    gt = [{"keypoints": kp, "head_boxes": heads}, empty]
    # the toolkit: predictions of a group without people are not false positives
    assert ae.evaluate_mpii(gt, [kp.copy(), stray]).columns["Total"] == 100.0
    # counted: two false positives ranked first, then two hits -> AP 50
    counted = ae.evaluate_mpii(gt, [kp.copy(), stray], empty_groups="count")
    assert counted.columns["Total"] == 50.0
    # a group without predictions: its people are not positives for the toolkit
    gt2 = [{"keypoints": kp, "head_boxes": heads}, {"keypoints": kp, "head_boxes": heads}]
    none = np.zeros((0, 16, 3))
    assert ae.evaluate_mpii(gt2, [kp.copy(), none]).columns["Total"] == 100.0
    assert ae.evaluate_mpii(gt2, [kp.copy(), none], empty_groups="count").columns["Total"] == 50.0
    with pytest.raises(ValueError, match="empty_groups must be one of"):
        ae.evaluate_mpii(gt2, [kp, none], empty_groups="skip")


def test_accepts_poses(rng):
    kp, heads = _people(rng, 2)
    poses = ae.Poses(kp.copy(), np.ones(2), np.zeros((2, 1)))
    gt = [{"keypoints": kp, "head_boxes": heads}]
    assert ae.evaluate_mpii(gt, [poses]).columns == ae.evaluate_mpii(gt, [kp]).columns


def test_format_table(rng):
    kp, heads = _people(rng, 1)
    text = ae.evaluate_mpii([{"keypoints": kp, "head_boxes": heads}], [kp]).format_table("ours")
    header, row = text.splitlines()
    assert header.split("&")[1:] == [
        "Head ",
        " Shoulder ",
        " Elbow ",
        " Wrist ",
        " Hip ",
        " Knee ",
        " Ankle ",
        " Total \\\\",
    ]
    assert row.startswith("ours& 100.0")
    assert row.count("100.0") == 8


@pytest.mark.parametrize(
    ("gt", "pred", "error", "match"),
    [
        ("x", [], TypeError, "ground_truth must be a sequence"),
        ([], {}, TypeError, "predictions must be a sequence"),
        ([{}], [], ValueError, "one entry per group"),
        ([[1]], [np.zeros((0, 16, 3))], TypeError, "ground_truth\\[0\\] must be a mapping"),
        ([{"keypoints": np.zeros((1, 16, 3))}], [np.zeros((0, 16, 3))], ValueError, "head_boxes"),
        (
            [{"keypoints": np.zeros((1, 17, 3)), "head_boxes": np.ones((1, 4))}],
            [np.zeros((0, 16, 3))],
            ValueError,
            "\\(N, 16, 3\\).*\\(1, 17, 3\\)",
        ),
        (
            [{"keypoints": np.zeros((1, 16, 3)), "head_boxes": np.ones((2, 4))}],
            [np.zeros((0, 16, 3))],
            ValueError,
            "\\(N, 4\\)",
        ),
        (
            [{"keypoints": np.zeros((1, 16, 3)), "head_boxes": np.ones((1, 4))}],
            [np.zeros((0, 16, 3))],
            ValueError,
            "size 0",
        ),
        (
            [{"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}],
            [np.zeros((1, 15, 3))],
            ValueError,
            "predictions\\[0\\] must have shape \\(P, 16, 3\\)",
        ),
        (
            [{"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}],
            [[1, 2]],
            TypeError,
            "ndarray \\(P, 16, 3\\) or Poses",
        ),
        (
            [{"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}],
            [np.full((1, 16, 3), np.inf)],
            ValueError,
            "infinite coordinates",
        ),
        (
            [{"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}],
            [np.array([[[np.nan, 1.0, 1.0]] * 16])],
            ValueError,
            "one NaN coordinate",
        ),
        (
            [{"keypoints": np.zeros((0, 16, 3)), "head_boxes": np.zeros((0, 4))}],
            [np.array([[[1.0, 1.0, np.nan]] * 16])],
            ValueError,
            "NaN or infinite scores",
        ),
        (
            [{"keypoints": np.full((1, 16, 3), np.nan), "head_boxes": np.ones((1, 4))}],
            [np.zeros((0, 16, 3))],
            ValueError,
            "NaN annotated flags",
        ),
        (
            [{"keypoints": np.zeros((1, 16, 3), dtype=bool), "head_boxes": np.ones((1, 4))}],
            [np.zeros((0, 16, 3))],
            TypeError,
            "real numbers",
        ),
    ],
)
def test_errors(gt, pred, error, match):
    with pytest.raises(error, match=match):
        ae.evaluate_mpii(gt, pred)


def test_annotated_joint_with_nan_coordinates_is_reported():
    kp = np.ones((1, 16, 3))
    kp[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="annotated joints"):
        ae.evaluate_mpii([{"keypoints": kp, "head_boxes": np.array([[0, 0, 5, 5]])}], [kp[:0]])
