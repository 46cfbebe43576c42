"""Time ``ae.decode`` against the literal reference parser on the same maps.

The baseline is ``tests/reference_parser.py``: HigherHRNet's ``group.py`` step by
step in numpy with the ``munkres`` package (``lib/core/group.py``), the parser the
decoder is tested to equal exactly; every timed image is also checked for equality.
Scenes come from ``benchmarks/scenes.py`` (COCO stick figures, Gaussian peaks, some
joints too weak to detect so that missing-joint recovery has work).

Rows:

- per image, one thread: 17x128x128, D=1 with 5/10/20/30 people (refine on and off),
  and HigherHRNet's real setting, 17x512x512 at input resolution, D=2 (flip), 30 people;
- a batch of 64 at 17x128x128 (20 people, refine on): throughput with 1 thread and all
  threads, through the thread pool ``decode`` uses and through a ``prange`` loop over
  the same per-image kernel (the alternative that was measured and not chosen), next
  to the speed-up a trivially parallel loop gets on the same machine (a shared machine
  may give less than one core per thread);
- import + first decode in a fresh process, with an empty numba cache (compile) and
  with the cache filled (load).

Usage::

    python benchmarks/bench_decode.py            # full table (minutes)
    python benchmarks/bench_decode.py --quick    # fewer repeats and reference images
    python benchmarks/bench_decode.py --smoke    # seconds, for CI

Times are medians; the ratio column compares two numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.reference_parser
sys.path.insert(0, str(ROOT / "benchmarks"))

from scenes import make_batch  # noqa: E402

import associative_embedding as ae  # noqa: E402
from tests.reference_parser import reference_parse  # noqa: E402


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_equal(poses, ref):
    for got, want in zip((poses.keypoints, poses.scores, poses.tags), ref, strict=True):
        if got.shape != want.shape or not np.array_equal(got, want, equal_nan=True):
            raise AssertionError("decode differs from the reference parser")


def per_image(label, size, dim, people, n_images, n_reference, repeats, refine, seed):
    heat, tags = make_batch(seed, n_images, people, size, dim)
    options = {"refine": refine}
    ours, found = [], []
    for i in range(n_images):
        h, t = heat[i : i + 1], tags[i : i + 1]
        ae.decode(h, t, num_threads=1, **options)
        ours.append(
            median_time(lambda h=h, t=t: ae.decode(h, t, num_threads=1, **options), repeats)
        )
        found.append(len(ae.decode(h, t, num_threads=1, **options)[0]))
    theirs = []
    for i in range(n_reference):
        t0 = time.perf_counter()
        ref = reference_parse(heat[i], tags[i], **options)
        theirs.append(time.perf_counter() - t0)
        check_equal(ae.decode(heat[i : i + 1], tags[i : i + 1], **options)[0], ref)
    ours_ms = 1000 * statistics.median(ours)
    ref_ms = 1000 * statistics.median(theirs) if theirs else float("nan")
    return (
        label,
        f"{people}",
        f"{statistics.median(found):.0f}",
        "on" if refine else "off",
        f"{ours_ms:.2f}",
        f"{ref_ms:.1f}",
        f"{ref_ms / ours_ms:.0f}x",
    )


def parallel_control(n_threads):
    """Speed-up of a trivially parallel nogil loop: what this machine gives n threads."""
    import threading

    from numba import njit

    @njit(nogil=True)
    def spin(n):
        s = 0.0
        for i in range(n):
            s += np.sqrt(i * 1.0)
        return s

    spin(10)
    n = 50_000_000
    t0 = time.perf_counter()
    for _ in range(n_threads):
        spin(n)
    serial = time.perf_counter() - t0
    threads = [threading.Thread(target=spin, args=(n,)) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return serial / (time.perf_counter() - t0)


def batched(size, dim, people, batch, repeats, seed, with_prange):
    import numba
    from numba import njit, prange

    from associative_embedding._batch import decode_image
    from associative_embedding._grouping import People, empty_people
    from associative_embedding.decoding import DecodeConfig, _capacity, _joint_order, _options

    heat, tags = make_batch(seed, batch, people, size, dim)
    n_all = max(1, int(numba.config.NUMBA_NUM_THREADS))
    rows = []
    one = median_time(lambda: ae.decode(heat, tags, num_threads=1), repeats)
    pool = median_time(lambda: ae.decode(heat, tags, num_threads=n_all), repeats)

    results = [(1, "thread pool (decode)", one), (n_all, "thread pool (decode)", pool)]
    if with_prange:

        @njit(parallel=True, nogil=True)
        def decode_prange(heat, tags, order, opts, out, out_n):
            for b in prange(heat.shape[0]):
                people = People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])
                out_n[b] = decode_image(heat[b], tags[b], order, opts, people)

        config = DecodeConfig()
        b, k, h, w = heat.shape
        opts = _options(config, h, w, heat.dtype)
        cap = _capacity(config, k, opts.max_candidates)
        tag5 = tags.reshape(b, k, dim, h, w)
        order = _joint_order(config, k)
        outs = (empty_people((b,), cap, k, dim, heat.dtype), np.zeros(b, np.int64))
        t0 = time.perf_counter()
        decode_prange(heat, tag5, order, opts, *outs)
        compile_s = time.perf_counter() - t0
        par = median_time(lambda: decode_prange(heat, tag5, order, opts, *outs), repeats)
        results.append((n_all, f"prange (compiled {compile_s:.0f} s, not cached)", par))
    for threads, label, sec in results:
        rows.append(
            (
                label,
                f"{threads}",
                f"{1000 * sec / batch:.2f}",
                f"{batch / sec:.0f}",
                f"{one / sec:.2f}x",
            )
        )
    rows.append(
        (
            "control: trivially parallel nogil loop",
            f"{n_all}",
            "",
            "",
            f"{parallel_control(n_all):.2f}x",
        )
    )
    return rows


def first_call(cold):
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np, associative_embedding as ae\n"
        "h = np.zeros((1, 17, 64, 64), np.float32); h[0, :, 5, 5] = 1\n"
        "ae.decode(h, np.zeros_like(h))\n"
        "print(time.perf_counter() - t0)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as cache:
        if not cold:
            env["NUMBA_CACHE_DIR"] = cache
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        env["NUMBA_CACHE_DIR"] = cache
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer images and repeats")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args()

    import numba

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, NUMBA_NUM_THREADS="
        f"{numba.config.NUMBA_NUM_THREADS}"
    )
    ae.warmup()
    if args.smoke:
        sizes = [("17x64x64 D=1", 64, 1, 5, 2, 2, 3, True)]
        big = []
        batch = (64, 1, 5, 8, 2)
    elif args.quick:
        sizes = [("17x128x128 D=1", 128, 1, p, 6, 3, 5, r) for p in (5, 10, 20, 30) for r in (1, 0)]
        big = [("17x512x512 D=2", 512, 2, 30, 3, 1, 3, True)]
        batch = (128, 1, 20, 64, 3)
    else:
        sizes = [
            ("17x128x128 D=1", 128, 1, p, 10, 5, 10, r) for p in (5, 10, 20, 30) for r in (1, 0)
        ]
        big = [("17x512x512 D=2", 512, 2, 30, 5, 3, 5, True)]
        batch = (128, 1, 20, 64, 5)
    rows = []
    for seed, (label, size, dim, people, n_img, n_ref, reps, refine) in enumerate(sizes + big):
        rows.append(per_image(label, size, dim, people, n_img, n_ref, reps, bool(refine), seed))
    table(
        "Per image, one thread (median ms); reference: tests/reference_parser.py (numpy, munkres)",
        ["maps", "people", "found", "refine", "decode ms", "reference ms", "ratio"],
        rows,
    )
    size, dim, people, b, reps = batch
    table(
        f"Batch of {b} at 17x{size}x{size}, D={dim}, {people} people, refine on",
        ["parallelism", "threads", "ms / image", "images / s", "vs 1 thread"],
        batched(size, dim, people, b, reps, seed=99, with_prange=not args.smoke),
    )
    if not args.smoke:
        table(
            "Import + first decode in a new process (s)",
            ["numba cache", "seconds"],
            [
                ("empty (compile)", f"{first_call(True):.1f}"),
                ("filled", f"{first_call(False):.2f}"),
            ],
        )


if __name__ == "__main__":
    main()
