"""Instance segmentation: the grouping loss over label maps and the pixel-grouping decoder.

Loss: forward + backward of ``ae.instance_grouping_loss`` (segment reductions) against the
per-instance loop of the discriminative-loss research code (De Brabandere et al. 2017 as
copied into many repositories: per image, per instance id, a boolean mask, the instance's
pixels, their mean; then a per-image push matrix), with the same pull and push.

Decoder: ``ae.decode_instances`` (numba) against the same seed-and-threshold rules written
with numpy vector operations per seed (``numpy_decode`` below, equal label maps checked).

Usage::

    python benchmarks/bench_instances.py            # 512 x 512, 20 instances
    python benchmarks/bench_instances.py --smoke    # seconds, for CI

Times are medians over repeats after a warm-up (which also compiles the numba kernel).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba
import numpy as np
import torch

import associative_embedding as ae


def loop_loss(tags: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, per instance: mask, gather, mean (the research repositories' structure)."""
    b, d = tags.shape[:2]
    pulls, pushes = [], []
    for i in range(b):
        means, pull = [], 0
        ids = torch.unique(labels[i])
        for lab in ids[ids > 0]:
            rows = tags[i][:, labels[i] == lab]  # (D, n)
            mean = rows.mean(1)
            means.append(mean)
            pull = pull + ((rows - mean[:, None]) ** 2).sum(0).mean() / d
        n = len(means)
        zero = tags.sum() * 0
        if n == 0:
            pulls.append(zero)
            pushes.append(zero)
            continue
        pulls.append(pull / n)
        if n == 1:
            pushes.append(zero)
            continue
        m = torch.stack(means)
        d2 = ((m[:, None] - m[None]) ** 2).sum(-1)
        pushes.append((torch.exp(-d2).sum() - n) * 0.5 / (n * (n - 1)))
    return torch.stack(pulls).mean(), torch.stack(pushes).mean()


def scene(b: int, size: int, n: int, d: int, seed: int = 0):
    """Label maps of n rectangles per image (later ones on top), tags = instance tag + noise."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((b, size, size), np.int64)
    tags = rng.normal(size=(b, d, size, size)).astype(np.float32) * 0.15
    fg = rng.uniform(0.0, 0.4, size=(b, size, size)).astype(np.float32)
    for i in range(b):
        for k in range(1, n + 1):
            y, x = rng.integers(0, size - size // 8, size=2)
            hh, ww = rng.integers(size // 16, size // 4, size=2)
            labels[i, y : y + hh, x : x + ww] = k
        centres = rng.normal(size=(n + 1, d)).astype(np.float32) * 3
        tags[i] += centres[labels[i]].transpose(2, 0, 1)
        fg[i][labels[i] > 0] = rng.uniform(0.6, 1.0)
    return torch.from_numpy(tags), torch.from_numpy(labels), fg


def time_it(fn, repeats: int, warmup: int = 1) -> float:
    times = []
    for _ in range(repeats + warmup):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[warmup:])


def numpy_decode(
    fg,
    tags,
    threshold=0.5,
    tag_threshold=1.0,
    min_size=8,
    max_instances=100,
    max_seeds=1000,
    iterations=1,
):
    """The rules of ``decode_instances`` for one (H, W) image, numpy vector ops per seed."""
    h, w = fg.shape
    score = fg.ravel()
    flat = tags.reshape(tags.shape[0], -1).T.astype(np.float64)
    remaining = np.flatnonzero(score > threshold)
    labels = np.zeros(h * w, np.int32)
    p = seeds = 0
    limit = tag_threshold**2
    while remaining.size and p < max_instances and seeds < max_seeds:
        seeds += 1
        seed = remaining[np.argmax(score[remaining])]
        centre = flat[seed]
        for _ in range(iterations):
            near = (((flat[remaining] - centre) ** 2).sum(1) < limit) | (remaining == seed)
            centre = flat[remaining[near]].mean(0)
        near = (((flat[remaining] - centre) ** 2).sum(1) < limit) | (remaining == seed)
        group, remaining = remaining[near], remaining[~near]
        if group.size >= min_size:
            p += 1
            labels[group] = p
    return labels.reshape(h, w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.smoke:
        loss_cases, dec_cases, repeats = [(2, 64, 5, 4)], [(1, 64, 5, 4)], 1
    else:
        loss_cases = [(1, 512, 20, 4), (4, 512, 20, 4), (8, 128, 20, 8)]
        dec_cases = [(1, 512, 20, 1), (1, 512, 20, 4), (1, 512, 20, 8)]
        repeats = 5
    print(f"torch {torch.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, 1 thread")  # fmt: skip

    print("\ninstance_grouping_loss, forward + backward (ms)")
    print(f"{'B':>3} {'H=W':>5} {'inst':>5} {'D':>3} {'ours':>9} {'loop':>9} {'ratio':>7}")
    for b, size, n, d in loss_cases:
        tags, labels, _ = scene(b, size, n, d)

        def step(fn, tags=tags, labels=labels):
            t = tags.clone().requires_grad_(True)
            pull, push = fn(t, labels)
            (pull + push).backward()
            return pull, push

        ours = step(ae.instance_grouping_loss)
        ref = step(loop_loss)
        torch.testing.assert_close(tuple(ours), tuple(ref), rtol=1e-4, atol=1e-6)
        t_ours = time_it(lambda: step(ae.instance_grouping_loss), repeats)
        t_loop = time_it(lambda: step(loop_loss), repeats)
        print(f"{b:>3} {size:>5} {n:>5} {d:>3} {t_ours:>9.1f} {t_loop:>9.1f} "
              f"{t_loop / t_ours:>6.1f}x")  # fmt: skip

    print("\ndecode_instances, one image (ms)")
    print(f"{'H=W':>5} {'inst':>5} {'D':>3} {'ours':>9} {'numpy':>9} {'ratio':>7} {'found':>6}")
    for b, size, n, d in dec_cases:
        tags, labels, fg = scene(b, size, n, d, seed=1)
        tags_np = tags.numpy()
        ae.decode_instances(fg, tags_np, num_threads=1)  # compile or load the kernel
        (inst,) = ae.decode_instances(fg, tags_np, num_threads=1)
        ref = numpy_decode(fg[0], tags_np[0])
        assert np.array_equal(inst.labels, ref), "decode_instances and numpy_decode disagree"
        t_ours = time_it(lambda f=fg, t=tags_np: ae.decode_instances(f, t, num_threads=1), repeats)
        t_np = time_it(lambda f=fg, t=tags_np: numpy_decode(f[0], t[0]), repeats)
        print(f"{size:>5} {n:>5} {d:>3} {t_ours:>9.2f} {t_np:>9.2f} {t_np / t_ours:>6.1f}x "
              f"{len(inst):>6}")  # fmt: skip


if __name__ == "__main__":
    main()
