"""Time of ``render_heatmaps`` against a per-joint loop and a dense evaluation.

Baselines, measured in the same run:

- ``loop``: HigherHRNet's ``HeatmapGenerator``
  (``lib/dataset/target_generators/target_generators.py``; pose-ae-train's is the
  same): per image, per person, per joint, a precomputed ``6σ+3`` patch is maxed into
  the map; it renders the ``"reference"`` targets, and for
  ``"exact"`` targets the same loop evaluates the Gaussian on the whole map.
- ``dense``: every person slot's Gaussian evaluated with one ``exp`` per pixel on
  the whole (B, K, H, W) batch (the library's implementation before the
  separable outer product).

Every baseline's maps are checked against the library's before timing.

Usage::

    python benchmarks/bench_targets.py            # full table
    python benchmarks/bench_targets.py --smoke    # seconds, for CI

Times are medians over repeats, so the speed-up columns are what to compare
across machines.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import associative_embedding as ae


def loop_reference(kp: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """HigherHRNet ``HeatmapGenerator.__call__`` on each image of (B, N, K, 3) keypoints."""
    b, _, k, _ = kp.shape
    patch = 6 * sigma + 3
    xs = np.arange(0, patch, 1, float)
    c0 = 3 * sigma + 1
    g = np.exp(-((xs - c0) ** 2 + (xs[:, None] - c0) ** 2) / (2 * sigma**2))
    out = np.zeros((b, k, size, size), np.float32)
    for i in range(b):
        for person in kp[i]:
            for j, (px, py, v) in enumerate(person):
                if v <= 0:
                    continue
                x, y = int(px), int(py)
                if x < 0 or y < 0 or x >= size or y >= size:
                    continue
                ul = int(np.round(x - 3 * sigma - 1)), int(np.round(y - 3 * sigma - 1))
                br = int(np.round(x + 3 * sigma + 2)), int(np.round(y + 3 * sigma + 2))
                c, d = max(0, -ul[0]), min(br[0], size) - ul[0]
                a, bb = max(0, -ul[1]), min(br[1], size) - ul[1]
                cc, dd = max(0, ul[0]), min(br[0], size)
                aa, b2 = max(0, ul[1]), min(br[1], size)
                out[i, j, aa:b2, cc:dd] = np.maximum(out[i, j, aa:b2, cc:dd], g[a:bb, c:d])
    return out


def loop_exact(kp: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Per image, person and joint: the sub-pixel Gaussian on the whole map."""
    b, _, k, _ = kp.shape
    centres = np.arange(size) + 0.5
    out = np.zeros((b, k, size, size), np.float32)
    for i in range(b):
        for person in kp[i]:
            for j, (x, y, v) in enumerate(person):
                if v <= 0 or not (0 <= np.floor(x) < size and 0 <= np.floor(y) < size):
                    continue
                d2 = (centres[None, :] - x) ** 2 + (centres[:, None] - y) ** 2
                g = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
                np.maximum(out[i, j], g, out=out[i, j])
    return out


def dense_exact(kp: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """One exp per pixel for every person slot on the (B, K, H, W) batch."""
    b, n, k, _ = kp.shape
    lab = kp[..., 2] > 0
    inside = (np.floor(kp[..., 0]) >= 0) & (np.floor(kp[..., 0]) < size)
    inside &= (np.floor(kp[..., 1]) >= 0) & (np.floor(kp[..., 1]) < size)
    valid = lab & inside
    centres = np.arange(size) + 0.5
    dx2 = np.where(valid[..., None], (centres - kp[..., 0, None]) ** 2, np.inf)
    dy2 = np.where(valid[..., None], (centres - kp[..., 1, None]) ** 2, np.inf)
    out = np.zeros((b, k, size, size), np.float32)
    for p in range(n):
        d2 = dy2[:, p, :, :, None] + dx2[:, p, :, None, :]
        np.maximum(out, np.exp(-d2 / (2 * sigma**2)).astype(np.float32), out=out)
    return out


def make_keypoints(b: int, n: int, k: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.zeros((b, n, k, 3))
    kp[..., :2] = rng.uniform(0, size, (b, n, k, 2))
    # the library keeps an exact target's centre 0.001 px inside its pixel (one peak, not a
    # plateau); the baselines evaluate the Gaussian where it is: keep the joints off the
    # pixel boundaries so that both draw the same maps
    frac = kp[..., :2] - np.floor(kp[..., :2])
    kp[..., :2] += np.clip(frac, 0.002, 0.998) - frac
    kp[..., 2] = rng.random((b, n, k)) < 0.8
    return kp


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small shapes, a few seconds")
    args = parser.parse_args()
    if args.smoke:
        cases, repeats = [(4, 3, 32), (8, 4, 48)], 3
    else:
        cases, repeats = [(8, 4, 48), (32, 5, 128), (32, 15, 128)], 7
    k, sigma = 17, 2.0
    # first call: numba compiles the kernel (or loads it from its cache)
    start = time.perf_counter()
    for method in ("reference", "exact"):
        ae.render_heatmaps(make_keypoints(1, 1, k, 16), (16, 16), sigma=sigma, method=method)
    first_call = time.perf_counter() - start
    print(
        f"# bench_targets: numpy {np.__version__}, {platform.processor() or platform.machine()}; "
        f"K={k}, sigma={sigma:g}; median of {repeats} (ms); first call (numba compile or "
        f"cache load) {first_call:.2f} s"
    )
    print("| method | B | people | map | loop | dense | library | vs loop | vs dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b, n, size in cases:
        kp = make_keypoints(b, n, k, size)
        for method in ("reference", "exact"):

            def lib(kp=kp, size=size, method=method):
                return ae.render_heatmaps(kp, (size, size), sigma=sigma, method=method)

            got = lib()
            loop = loop_reference if method == "reference" else loop_exact
            np.testing.assert_allclose(loop(kp, size, sigma), got, rtol=1e-6, atol=1e-7)
            t_loop = median_ms(lambda kp=kp, size=size, loop=loop: loop(kp, size, sigma), 1)
            t_lib = median_ms(lib, repeats)
            dense_cols = ("", "")
            if method == "exact":
                np.testing.assert_allclose(dense_exact(kp, size, sigma), got, rtol=1e-6, atol=1e-7)
                t_dense = median_ms(lambda kp=kp, size=size: dense_exact(kp, size, sigma), repeats)
                dense_cols = (f"{t_dense:.2f}", f"{t_dense / t_lib:.1f}x")
            print(
                f"| {method} | {b} | {n} | {size}x{size} | {t_loop:.1f} | {dense_cols[0]} | "
                f"{t_lib:.2f} | {t_loop / t_lib:.0f}x | {dense_cols[1]} |"
            )


if __name__ == "__main__":
    main()
