"""Slow, obviously-correct grouping losses: loops over images, people and joints.

Written from the upstream code (pose-ae-train ``extensions/AE/AE_loss.py``, HigherHRNet
``lib/core/loss.py::AELoss``) and the paper's formulas, not from the library code, so that the vectorised loss can be checked against them.
"""

from __future__ import annotations

import math

import torch


def _people(tags, keypoints, mask, b, rounding="trunc"):
    """Per person of image b: list of (K_n, D) gathered tag tensors."""
    five = tags.dim() == 5
    h, w = tags.shape[-2], tags.shape[-1]
    people = []
    for n in range(keypoints.shape[1]):
        rows = []
        for k in range(keypoints.shape[2]):
            x, y, v = (float(t) for t in keypoints[b, n, k])
            if not v > 0:
                continue
            if rounding == "round":
                xi, yi = math.floor(x + 0.5), math.floor(y + 0.5)
            elif rounding == "floor":
                xi, yi = math.floor(x), math.floor(y)
            else:  # the references' int(x)
                xi, yi = int(x), int(y)
            if not (0 <= xi < w and 0 <= yi < h):
                continue
            if mask is not None and not float(mask[b, yi, xi]) > 0:
                continue
            t = tags[b, k, :, yi, xi] if five else tags[b, k, yi, xi].reshape(1)
            rows.append(t.double())
        if rows:
            people.append(torch.stack(rows))
    return people


def reference_terms(
    tags,
    keypoints,
    mask=None,
    *,
    push="exp",
    sigma=2**-0.5,
    margin=1.0,
    normalization="reference",
    rounding="trunc",
):
    """Per-image (pull, push) as two (B,) float64 tensors."""
    pulls, pushes = [], []
    d = tags.shape[2] if tags.dim() == 5 else 1
    for b in range(tags.shape[0]):
        people = _people(tags, keypoints, mask, b, rounding)
        n_people = len(people)
        zero = tags.sum().double() * 0
        if n_people == 0:
            pulls.append(zero)
            pushes.append(zero)
            continue
        means = [p.mean(0) for p in people]
        pull = zero
        for p, m in zip(people, means, strict=True):
            person = zero
            for row in p:
                person = person + ((row - m) ** 2).sum()
            if normalization == "reference":
                person = person / (len(p) * d)
            pull = pull + person
        pull = pull / n_people

        def penalty(a, c):
            diff = a - c
            if push == "exp":
                return torch.exp(-(diff**2).sum() / (2 * sigma**2))
            dist = (
                torch.sqrt((diff**2).sum())
                if float((diff**2).sum().detach()) > 0
                else diff.abs().sum()
            )
            return torch.clamp(margin - dist, min=0)

        total = zero
        if normalization == "reference":
            for i in range(n_people):
                for j in range(n_people):
                    if i != j:
                        total = total + penalty(means[i], means[j])
            push_value = 0.5 * total / (n_people * (n_people - 1)) if n_people > 1 else zero
        else:
            for i in range(n_people):
                for j in range(n_people):
                    total = total + penalty(means[i], means[j])
            push_value = total / n_people**2
        pulls.append(pull)
        pushes.append(push_value)
    if not pulls:
        z = tags.double().reshape(-1)[:0]
        return z, z
    return torch.stack(pulls), torch.stack(pushes)


def higherhrnet_single_tag_loss(pred_tag, joints, loss_type="exp"):
    """HigherHRNet ``singleTagLoss`` from ``lib/core/loss.py`` (1-D tags).

    pred_tag: (K*H*W, 1) tensor; joints: (max_people, K, 2) packed index array.
    """
    tags, pull = [], 0
    for joints_per_person in joints:
        tmp = []
        for joint in joints_per_person:
            if joint[1] > 0:
                tmp.append(pred_tag[int(joint[0])])
        if len(tmp) == 0:
            continue
        tmp = torch.stack(tmp)
        tags.append(torch.mean(tmp, dim=0))
        pull = pull + torch.mean((tmp - tags[-1].expand_as(tmp)) ** 2)
    num_tags = len(tags)
    if num_tags == 0:
        return pred_tag.sum() * 0, pred_tag.sum() * 0
    if num_tags < 2:
        return pred_tag.sum() * 0, pull / num_tags
    tags = torch.stack(tags)
    size = (num_tags, num_tags)
    a = tags.expand(*size)
    bb = a.permute(1, 0)
    diff = a - bb
    if loss_type == "exp":
        diff = torch.pow(diff, 2)
        push = torch.exp(-diff)
        push = torch.sum(push) - num_tags
    else:
        diff = 1 - torch.abs(diff)
        push = torch.clamp(diff, min=0).sum() - num_tags
    push = push / ((num_tags - 1) * num_tags) * 0.5
    return push, pull / num_tags
