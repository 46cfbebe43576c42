"""The decoder's path for CUDA tensors: candidates on the device, the rest on the CPU.

Non-maximum suppression, top-k and the gathers run with torch where the maps
are; only the candidates, and for the missing-joint search the maps of the
joint types some person misses, cross to the CPU, where the numba kernels of
``people`` and ``missing`` finish the work. Results equal the numpy path's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import work_dtype
from ..config import DecodeConfig
from . import options as _options
from .plan import collect
from .threads import run_chunks

if TYPE_CHECKING:
    from ..poses import Poses
    from .peaks import Candidates


def torch_candidates(heat: Any, tags: Any, m: int, threshold: float, kernel: int) -> tuple:
    """NMS, top-k and gathers with torch on the tensors' device.

    Same candidates, order included, as ``peaks.find_candidates``:
    peaks (``max_pool2d == heat``) with value ``> threshold``, the ``m``
    strongest, ties by flat index. ``heat`` is ``(B, K, H, W)``, ``tags``
    ``(B, K, D, H, W)``, both of the work dtype. Returns tensors on the same
    device: values ``(B, K, m)``, flat indices ``(B, K, m)`` (int64), counts
    ``(B, K)``, tags ``(B, K, m, D)`` and neighbours ``(B, K, m, 4)`` (left,
    right, up, down, clipped).
    """
    import torch
    import torch.nn.functional as F

    b, k, h, w = heat.shape
    d = tags.shape[2]
    hw = h * w
    pooled = F.max_pool2d(heat, kernel, stride=1, padding=kernel // 2)
    keep = (pooled == heat) & (heat > threshold)
    flat = heat.reshape(b, k, hw)
    keep = keep.reshape(b, k, hw)
    neg_inf = torch.tensor(float("-inf"), dtype=heat.dtype, device=heat.device)
    masked = torch.where(keep, flat, neg_inf)
    top_vals, _ = torch.topk(masked, m, dim=2)
    kth = top_vals[..., m - 1 : m]  # the m-th largest value (-inf if fewer candidates)
    index = torch.arange(hw, device=heat.device, dtype=torch.int64).expand(b, k, hw)
    above = keep & (masked > kth)
    at_kth = keep & (masked == kth)
    # a key selecting every candidate above the m-th value and, among those equal to it,
    # the ones with the lowest flat index
    key = torch.where(above, torch.full_like(index, 2 * hw), torch.full_like(index, -1))
    key = torch.where(at_kth, hw - index, key)
    sel_key, sel_idx = torch.topk(key, m, dim=2)
    valid = sel_key >= 0
    sel_idx = torch.where(valid, sel_idx, torch.full_like(sel_idx, hw))
    sel_idx, _ = torch.sort(sel_idx, dim=2)  # ascending flat index, invalid last
    valid = sel_idx < hw
    safe_idx = torch.where(valid, sel_idx, torch.zeros_like(sel_idx))
    vals = torch.gather(flat, 2, safe_idx)
    vals = torch.where(valid, vals, neg_inf)
    vals, perm = torch.sort(vals, dim=2, descending=True, stable=True)
    idx = torch.gather(safe_idx, 2, perm)
    valid = torch.gather(valid, 2, perm)
    counts = valid.sum(dim=2)
    vals = torch.where(valid, vals, torch.zeros_like(vals))
    y = idx // w
    x = idx % w
    tag_flat = tags.reshape(b, k, d, hw)
    cand_tag = torch.gather(tag_flat, 3, idx[:, :, None, :].expand(b, k, d, m)).permute(0, 1, 3, 2)

    def at(yy: Any, xx: Any) -> Any:
        return torch.gather(flat, 2, yy * w + xx)

    nb = torch.stack(
        [
            at(y, (x - 1).clamp(min=0)),
            at(y, (x + 1).clamp(max=w - 1)),
            at((y - 1).clamp(min=0), x),
            at((y + 1).clamp(max=h - 1), x),
        ],
        dim=3,
    )
    return vals, idx, counts, cand_tag, nb


def decode_tensors(
    heatmaps: Any, tags: Any, config: DecodeConfig, d: int, num_threads: int
) -> list[Poses]:
    """Decode tensors: candidates with torch on their device, grouping and refine on the CPU."""
    import torch

    from .peaks import Candidates

    b, k, h, w = (int(s) for s in heatmaps.shape)
    dtype = work_dtype(heatmaps.dtype, tags.dtype)
    if b == 0:
        return []
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    with torch.no_grad():
        heat_t = heatmaps.detach().to(tdt).contiguous()
        tags_t = tags.detach().to(tdt).reshape(b, k, d, h, w).contiguous()
        opts = _options.build(config, k, h, w, dtype)
        # the work dtype's threshold: torch compares in the tensors' dtype, and this
        # value selects what the float64 comparison of the numpy path selects
        threshold = float(opts.detection_threshold)
        found = torch_candidates(heat_t, tags_t, opts.max_candidates, threshold, config.nms_kernel)
        vals, idx, counts, cand_tag, nb = (
            np.ascontiguousarray(t.cpu().numpy()) for t in found
        )  # one transfer of the candidates
    cand = Candidates(vals, idx.astype(np.int64), counts.astype(np.int64), cand_tag, nb)

    def maps_of(bi: np.ndarray, ki: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            sel_b = torch.as_tensor(bi, device=heat_t.device)
            sel_k = torch.as_tensor(ki, device=heat_t.device)
            return (
                np.ascontiguousarray(heat_t[sel_b, sel_k].cpu().numpy()),
                np.ascontiguousarray(tags_t[sel_b, sel_k].cpu().numpy()),
            )

    return group_and_refine(cand, (h, w), maps_of, config, num_threads)


def group_and_refine(
    cand: Candidates,
    size: tuple[int, int],
    maps_of: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    config: DecodeConfig,
    num_threads: int,
) -> list[Poses]:
    """Group a batch of candidates ``(B, K, M, ...)`` and recover the missing joints.

    ``maps_of(bi, ki)`` returns the heatmaps ``(S, H, W)`` and tags ``(S, D, H,
    W)`` (numpy, work dtype) of the S (image, joint type) pairs ``(bi[s], ki[s])``:
    only the maps of joint types some person misses are fetched, in one call.
    """
    from .people import empty_people
    from .pipeline import group_range, refine_range

    h, w = size
    b, k, m, d = cand.tag.shape
    dtype = cand.tag.dtype
    opts = _options.build(config, k, h, w, dtype)
    order = _options.joint_order(config, k)
    out = empty_people((b,), _options.capacity(config, k, m), k, d, dtype)
    out_n = np.zeros(b, np.int64)

    def group(start: int, stop: int) -> None:
        group_range(cand, h, w, order, opts.group, (start, stop), out, out_n)

    run_chunks(group, b, num_threads)
    if config.refine:
        need = np.zeros((b, k), bool)
        for i, n in enumerate(out_n.tolist()):
            need[i] = (out.det[i, :n] == 0).any(axis=0)
        bi, ki = np.nonzero(need)
        slot = np.full((b, k), -1, np.int64)
        slot[bi, ki] = np.arange(bi.size)
        if bi.size:
            heat_sel, tags_sel = maps_of(bi, ki)
        else:
            heat_sel = np.zeros((1, h, w), dtype)
            tags_sel = np.zeros((1, d, h, w), dtype)

        def refine(start: int, stop: int) -> None:
            refine_range(heat_sel, tags_sel, slot, cand, opts.refine, (start, stop), out, out_n)

        run_chunks(refine, b, num_threads)
    return collect(out, out_n.tolist())
