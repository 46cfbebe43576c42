"""A slow, literal reference parser in plain numpy, after the upstream parsers.

It follows HigherHRNet's ``lib/core/group.py`` (``HeatmapParser.nms``,
``top_k``, ``match_by_tag``, ``adjust``, ``refine``, ``parse``) step by step,
with the same numpy expressions and dtypes, and solves each assignment with the
``munkres`` package (1.1.4) on the same float64 cost array. The options of
``associative_embedding.DecodeConfig`` switch in the other references' variants
(pose-ae-train ``utils/group.py``: RMS distance and refine score; mmpose
``codecs/associative_embedding.py`` and ``codecs/utils/refinement.py``: adjust rule,
person cap and fill).

Departures from HigherHRNet, shared with the library by design:

- people are keyed by integer ids, not by the float of their first tag;
- peaks of equal value are ranked by flat index (``torch.topk``'s tie order is
  unspecified);
- the result keeps the input dtype (HigherHRNet casts to float32);
- every coordinate is ``pixel + adjustment + center_shift``, computed in
  float64; the reference tag of the refine step is read at the matched pixels;
- joints neither detected nor filled get NaN coordinates.

Used by ``tests/test_decode.py`` as the oracle and by
``benchmarks/bench_decode.py`` as the baseline ("the references' speed").
"""

from __future__ import annotations

import numpy as np
from munkres import Munkres
from numpy.lib.stride_tricks import sliding_window_view

COCO_ORDER = [i - 1 for i in [1, 2, 3, 4, 5, 6, 7, 12, 13, 8, 9, 10, 11, 14, 15, 16, 17]]


def nms(heat, kernel):
    """``det * (max_pool2d(det, kernel, 1, kernel // 2) == det)`` on (K, H, W)."""
    r = kernel // 2
    padded = np.pad(heat, ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    maxm = sliding_window_view(padded, (kernel, kernel), axis=(1, 2)).max(axis=(-1, -2))
    return heat * (maxm == heat).astype(heat.dtype)


def top_k(heat, tags, max_people, kernel):
    """HigherHRNet ``top_k`` for one image; ties in value ranked by flat index."""
    k_joints, h, w = heat.shape
    det = nms(heat, kernel).reshape(k_joints, -1)
    m = min(max_people, h * w)
    ind = np.stack([np.lexsort((np.arange(h * w), -det[k]))[:m] for k in range(k_joints)])
    val_k = np.take_along_axis(det, ind, axis=1)
    tag = tags.reshape(k_joints, tags.shape[1], h * w)  # (K, D, H*W)
    tag_k = np.stack(
        [np.take_along_axis(tag[:, d, :], ind, axis=1) for d in range(tags.shape[1])], axis=2
    )
    loc_k = np.stack((ind % w, ind // w), axis=2)
    return tag_k, loc_k, val_k


def match_by_tag(tag_k, loc_k, val_k, o):
    """HigherHRNet ``match_by_tag`` with integer person ids and the library's options."""
    k_joints = tag_k.shape[0]
    default_ = np.zeros((k_joints, 3 + tag_k.shape[2]))
    joint_list = []  # person id -> (K, 3 + D) float64
    tag_list = []  # person id -> list of member tags
    cap = o["max_people"] if o["match_people"] == "first" else None
    if o["max_instances"] is not None and o["max_instances_mode"] == "matching":
        # mmpose 1.0/1.1: only the first max_instances groups are matched against
        cap = o["max_instances"] if cap is None else min(cap, o["max_instances"])
    for i in range(k_joints):
        idx = o["joint_order"][i]
        tags = tag_k[idx]
        joints = np.concatenate((loc_k[idx], val_k[idx, :, None], tags), 1)
        mask = joints[:, 2] > o["detection_threshold"]
        tags = tags[mask]
        joints = joints[mask]
        if joints.shape[0] == 0:
            continue
        if i == 0 or len(joint_list) == 0:
            for tag, joint in zip(tags, joints, strict=True):
                joint_list.append(np.copy(default_))
                joint_list[-1][idx] = joint
                tag_list.append([tag])
            continue
        grouped_keys = list(range(len(joint_list)))
        if cap is not None:
            grouped_keys = grouped_keys[:cap]
        if (
            o["ignore_too_much"]
            and len(list(range(len(joint_list)))[: o["max_people"]]) == o["max_people"]
        ):
            continue
        grouped_tags = [np.mean(tag_list[key], axis=0) for key in grouped_keys]
        diff = joints[:, None, 3:] - np.array(grouped_tags)[None, :, :]
        if o["tag_distance"] == "l2":
            diff_normed = np.linalg.norm(diff, ord=2, axis=2)
        else:  # pose-ae-train
            diff_normed = ((diff) ** 2).mean(axis=2) ** 0.5
        diff_saved = np.copy(diff_normed)
        num_added = diff.shape[0]
        num_grouped = diff.shape[1]
        if o["matching"] == "hungarian":
            if o["use_detection_value"]:
                diff_normed = np.round(diff_normed) * 100 - joints[:, 2:3]
            if num_added > num_grouped:
                diff_normed = np.concatenate(
                    (diff_normed, np.zeros((num_added, num_added - num_grouped)) + 1e10), axis=1
                )
            pairs = Munkres().compute(diff_normed)
        else:  # the paper's greedy rule: people in creation order take their best candidate
            claimed = []
            pairs = []
            for col in range(num_grouped):
                for row in range(num_added):
                    if row not in claimed and diff_saved[row, col] < o["tag_threshold"]:
                        claimed.append(row)
                        pairs.append((row, col))
                        break
            pairs += [(row, num_grouped) for row in range(num_added) if row not in claimed]
            pairs.sort()
        for row, col in pairs:
            if row < num_added and col < num_grouped and diff_saved[row][col] < o["tag_threshold"]:
                key = grouped_keys[col]
                joint_list[key][idx] = joints[row]
                tag_list[key].append(tags[row])
            else:
                joint_list.append(np.copy(default_))
                joint_list[-1][idx] = joints[row]
                tag_list.append([tags[row]])
    if o["max_instances"] is not None:
        joint_list = joint_list[: o["max_instances"]]
        tag_list = tag_list[: o["max_instances"]]
    return joint_list, tag_list


def quarter(tmp, xx, yy, rule):
    """(dx, dy) for integer column ``xx`` and row ``yy`` of a (H, W) map."""
    h, w = tmp.shape
    if rule == "reference":  # HigherHRNet adjust / refine
        dx = 0.25 if tmp[yy, min(xx + 1, w - 1)] > tmp[yy, max(xx - 1, 0)] else -0.25
        dy = 0.25 if tmp[min(yy + 1, h - 1), xx] > tmp[max(0, yy - 1), xx] else -0.25
        return dx, dy
    if rule == "symmetric":  # the library's default: the reference rule, ties stay
        ddx = float(tmp[yy, min(xx + 1, w - 1)]) - float(tmp[yy, max(xx - 1, 0)])
        ddy = float(tmp[min(yy + 1, h - 1), xx]) - float(tmp[max(0, yy - 1), xx])
        return float(np.sign(ddx)) * 0.25, float(np.sign(ddy)) * 0.25
    # mmpose 1.x refine_keypoints
    if 1 < xx < w - 1 and 0 < yy < h:
        ddx = tmp[yy, xx + 1] - tmp[yy, xx - 1]
    else:
        ddx = 0.0
    if 1 < yy < h - 1 and 0 < xx < w:
        ddy = tmp[yy + 1, xx] - tmp[yy - 1, xx]
    else:
        ddy = 0.0
    return float(np.sign(ddx)) * 0.25, float(np.sign(ddy)) * 0.25


def refine_person(det, tag, keypoints, pixels, filled, o):
    """HigherHRNet ``refine`` for one person, with the pose-ae-train and mmpose variants.

    ``det`` (K, H, W); ``tag`` (K, H, W, D) as HigherHRNet lays it out;
    ``keypoints`` (K, 3) of this person, written in place; ``pixels`` (K, 2)
    integer (x, y) of the matched joints; ``filled`` (K,) bool, set for filled
    joints.
    """
    tags = []
    for i in range(keypoints.shape[0]):
        if keypoints[i, 2] > 0:
            x, y = pixels[i]
            tags.append(tag[i, y, x])
    prev_tag = np.mean(tags, axis=0)
    ans = []
    for i in range(keypoints.shape[0]):  # every joint, as HigherHRNet; only missing ones are used
        tmp = det[i, :, :]
        tt = ((tag[i, :, :] - prev_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5
        if o["refine_mode"] == "mmpose":  # argmin of round(dist) * 100 - heat
            cost_map = np.round(tt) * 100 - tmp
            y, x = np.unravel_index(np.argmin(cost_map), tmp.shape)
        else:
            tmp2 = tmp - np.round(tt)
            y, x = np.unravel_index(np.argmax(tmp2), tmp.shape)
        ans.append((x, y, tmp[y, x]))
    for i, (x, y, val) in enumerate(ans):
        if keypoints[i, 2] > 0:
            continue
        if o["refine_mode"] == "mmpose":  # always filled, at the integer pixel
            keypoints[i, :3] = [x, y, val]
            filled[i] = True
            continue
        if not val > 0:
            continue
        tmp = det[i, :, :]
        dx, dy = quarter(tmp, x, y, o["adjust_rule"]) if o["adjust"] else (0.0, 0.0)
        keypoints[i, 0] = (x + dx) + o["center_shift"]
        keypoints[i, 1] = (y + dy) + o["center_shift"]
        keypoints[i, 2] = 1 if o["refine_mode"] == "pose-ae-train" else val
        filled[i] = True


DEFAULTS = {
    "max_people": 30,
    "detection_threshold": 0.1,
    "tag_threshold": 1.0,
    "nms_kernel": 5,
    "matching": "hungarian",
    "use_detection_value": True,
    "tag_distance": "l2",
    "joint_order": None,
    "adjust": True,
    "adjust_rule": "reference",
    "center_shift": 0.5,
    "refine": True,
    "refine_mode": "higherhrnet",
    "match_people": "first",
    "ignore_too_much": False,
    "max_instances": None,
    "max_instances_mode": "final",
}


def reference_parse(heat, tags, **options):
    """Decode one image: ``heat`` (K, H, W), ``tags`` (K, D, H, W) of one float dtype.

    Returns ``(keypoints (P, K, 3), scores (P,), tags (P, D))`` sorted by score,
    in the dtype of the inputs.
    """
    o = {**DEFAULTS, **options}
    k_joints = heat.shape[0]
    if o["joint_order"] is None:
        o["joint_order"] = COCO_ORDER if k_joints == 17 else list(range(k_joints))
    dtype = heat.dtype
    tag_k, loc_k, val_k = top_k(heat, tags, o["max_people"], o["nms_kernel"])
    joint_list, tag_list = match_by_tag(tag_k, loc_k, val_k, o)
    d = tags.shape[1]
    if not joint_list:
        empty = np.zeros((0, k_joints, 3), dtype)
        return empty, np.zeros(0, dtype), np.zeros((0, d), dtype)
    ans = np.array(joint_list).astype(dtype)  # (P, K, 3 + D)
    pixels = ans[:, :, 0:2].astype(np.int64)
    detected = ans[:, :, 2] > 0
    # adjust (HigherHRNet, on the original heatmap), then the centre shift
    for people_id, person in enumerate(ans):
        for joint_id, joint in enumerate(person):
            if joint[2] > 0:
                xx, yy = pixels[people_id, joint_id]
                if o["adjust"]:
                    dx, dy = quarter(heat[joint_id], xx, yy, o["adjust_rule"])
                else:
                    dx, dy = 0.0, 0.0
                ans[people_id, joint_id, 0] = (xx + dx) + o["center_shift"]
                ans[people_id, joint_id, 1] = (yy + dy) + o["center_shift"]
    scores = np.array([person[:, 2].mean() for person in ans], dtype=dtype)
    filled = np.zeros(detected.shape, bool)
    if o["refine"]:
        tag_hwd = np.ascontiguousarray(np.moveaxis(tags, 1, 3))  # HigherHRNet's (K, H, W, D)
        for i in range(len(ans)):
            refine_person(heat, tag_hwd, ans[i], pixels[i], filled[i], o)
    keypoints = np.ascontiguousarray(ans[:, :, :3])
    missing = ~(detected | filled)
    keypoints[missing, 0] = np.nan
    keypoints[missing, 1] = np.nan
    keypoints[missing, 2] = 0
    person_tags = np.array([np.mean(t, axis=0) for t in tag_list], dtype=dtype).reshape(-1, d)
    order = np.argsort(-scores, kind="stable")
    return keypoints[order], scores[order], person_tags[order]
