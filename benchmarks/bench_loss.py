"""Forward + backward time of the vectorised grouping loss against a per-person loop.

The loop baseline is HigherHRNet's ``AELoss`` structure (HigherHRNet ``lib/core/loss.py``): a Python
loop over images, people and joints gathering one tag at a time, then a per-image
push matrix; generalised to D-dimensional tags so that D = 4 can be timed too.

Usage::

    python benchmarks/bench_loss.py            # full table (B=32, 17x128x128)
    python benchmarks/bench_loss.py --smoke    # seconds, for CI

Times are medians over repeats after a warm-up, measured in one run, so the ratio
column is what to compare across machines.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import associative_embedding as ae


def loop_loss(tags: torch.Tensor, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HigherHRNet-style loop: per image, per person, per joint."""
    b, k = tags.shape[:2]
    h, w = tags.shape[-2:]
    flat = tags.reshape(b, k, -1, h * w)  # (B, K, D, HW)
    kp = keypoints.cpu().numpy()  # the references move joints to the CPU
    pulls, pushes = [], []
    for i in range(b):
        image = flat[i]  # per-image view, as HigherHRNet's singleTagLoss receives
        means, pull = [], 0
        for person in kp[i]:
            rows = []
            for j, (x, y, v) in enumerate(person):
                xi, yi = int(np.floor(x)), int(np.floor(y))  # the references index at int(x)
                if v > 0 and 0 <= xi < w and 0 <= yi < h:
                    rows.append(image[j, :, yi * w + xi])
            if not rows:
                continue
            rows = torch.stack(rows)
            means.append(rows.mean(0))
            pull = pull + ((rows - means[-1]) ** 2).mean()
        n = len(means)
        if n == 0:
            pulls.append(tags.sum() * 0)
            pushes.append(tags.sum() * 0)
            continue
        if n == 1:
            pulls.append(pull / n)
            pushes.append(tags.sum() * 0)
            continue
        m = torch.stack(means)
        d2 = ((m[:, None] - m[None]) ** 2).sum(-1)
        pushes.append((torch.exp(-d2).sum() - n) / (n * (n - 1)) * 0.5)
        pulls.append(pull / n)
    return torch.stack(pulls).mean(), torch.stack(pushes).mean()


def make_inputs(b, n_slots, n_people, k, size, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (b, k, size, size) if d == 1 else (b, k, d, size, size)
    tags = torch.randn(shape, generator=g)
    kp = torch.zeros(b, n_slots, k, 3)
    kp[:, :n_people, :, :2] = torch.rand(b, n_people, k, 2, generator=g) * (size - 1)
    kp[:, :n_people, :, 2] = (torch.rand(b, n_people, k, generator=g) < 0.8).float()
    return tags, kp


def time_step(fn, tags, kp, repeats, warmup=1):
    times = []
    for _ in range(repeats + warmup):
        t = tags.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        pull, push = fn(t, kp)
        (pull + push).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, a few seconds")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.smoke:
        b, size, repeats, people = 4, 32, 2, [3, 8]
    else:
        b, size, repeats, people = 32, 128, 5, [5, 15, 30]
    k, slots = 17, 30
    loss = ae.AssociativeEmbeddingLoss()

    print(
        f"# bench_loss: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s); B={b}, N={slots} slots, K={k}, {size}x{size}; "
        f"forward+backward, median of {repeats}"
    )
    header = "| D | people | loop (ms) | vectorised (ms) | speed-up |"
    print(header)
    print("|---|---|---|---|---|")
    for d in [1, 4]:
        for n in people:
            tags, kp = make_inputs(b, slots, n, k, size, d)
            with torch.no_grad():
                ref = loop_loss(tags, kp)
                got = loss(tags, kp)
            torch.testing.assert_close(got.pull, ref[0], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(got.push, ref[1], rtol=1e-4, atol=1e-6)
            # the loop is plain Python (nothing to warm up) and takes seconds: time it once
            t_loop = time_step(loop_loss, tags, kp, 1, warmup=0)
            t_vec = time_step(loss, tags, kp, repeats)
            print(f"| {d} | {n} | {t_loop * 1e3:.1f} | {t_vec * 1e3:.2f} | {t_loop / t_vec:.0f}x |")


if __name__ == "__main__":
    main()
