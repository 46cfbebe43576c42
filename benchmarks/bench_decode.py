"""Time ``ae.decode`` against mmpose 1.3.2's codec, the literal reference parser and memory.

Baselines, each checked to decode the same people as ``ae.decode`` on every timed image:

- mmpose 1.3.2's ``AssociativeEmbedding`` codec (``mmpose/codecs/associative_embedding.py``,
  ``batch_decode``, one image per call) with its COCO config's settings
  (``ae_hrnet-w32_8xb24-300e_coco-512x512.py``: ``decode_topk=30``,
  ``decode_center_shift=0.5``, ``decode_max_instances=30``, the COCO joint order), against
  ``ae.decode`` with ``DecodeConfig.preset("mmpose-1.x")``. mmpose takes torch tensors and
  tags as (B, D*K, H, W) with channel ``d*K + k``; its input and heatmap sizes are equal
  here, so its ``scale_factor`` is 1 and both report heatmap pixels with centres at +0.5.
  mmpose lists people in creation order; they are compared after a stable sort by score,
  the order ``ae.decode`` returns. Used only when mmpose is installed (it is not a
  dependency of the package); otherwise the columns are skipped with a note.
- ``tests/reference_parser.py``: HigherHRNet's ``group.py`` step by step in numpy with the
  ``munkres`` package (``lib/core/group.py``), the parser the decoder is tested to equal
  exactly, against ``ae.decode`` with ``DecodeConfig.preset("higherhrnet")``; every table
  but mmpose's times that preset (the references' kernels).
- the memory floor: the time to read the image's heatmaps and tags once, their bytes
  divided by the bandwidth a numpy sum over a 256 MiB array reaches in the same run.

Scenes come from ``benchmarks/scenes.py`` (COCO stick figures, Gaussian peaks, some
joints too weak to detect so that missing-joint recovery has work).

Tables:

- against the baselines, one image per call, one thread, refine on: 17x128x128, D=1 and
  17x256x256, D=2 (flip), 10 people;
- per image, one thread: 17x128x128, D=1 with 5/10/20/30 people (refine on and off),
  and HigherHRNet's real setting, 17x512x512 at input resolution, D=2, 30 people,
  against the reference parser;
- one-image calls against one batched call (one thread, all threads);
- a batch of 64 at 17x128x128 (20 people, refine on): throughput with 1 thread and all
  threads, through the thread pool ``decode`` uses and through a ``prange`` loop over
  the same per-image kernel (the alternative that was measured and not chosen), next
  to the speed-up a trivially parallel loop gets on the same machine (a shared machine
  may give less than one core per thread).

The first call in a new process (numba compile or cache load) is timed by
``benchmarks/bench_first_call.py``.

Usage::

    python benchmarks/bench_decode.py            # full tables (minutes)
    python benchmarks/bench_decode.py --quick    # fewer repeats and reference images
    python benchmarks/bench_decode.py --smoke    # seconds, for CI
    python benchmarks/bench_decode.py --no-mmpose  # skip mmpose even if installed

Times are medians; a ratio compares two numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.reference_parser
sys.path.insert(0, str(ROOT / "benchmarks"))

from scenes import make_batch  # noqa: E402

import associative_embedding as ae  # noqa: E402
from tests.reference_parser import reference_parse  # noqa: E402

REF = ae.DecodeConfig.preset("higherhrnet")  # the references' settings, every field


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


def image_ms(decode_one, heat, tags, n_images, repeats):
    """Median over ``n_images`` images of the median time (ms) of ``decode_one(h, t)``."""
    per_image = []
    for i in range(n_images):
        h, t = heat[i : i + 1], tags[i : i + 1]
        decode_one(h, t)
        per_image.append(median_time(lambda h=h, t=t: decode_one(h, t), repeats))
    return 1000 * statistics.median(per_image)


def reference_ms(heat, tags, n_reference, options):
    """Median time (ms) of the reference parser, each image checked against ``decode``."""
    times = []
    for i in range(n_reference):
        t0 = time.perf_counter()
        ref = reference_parse(heat[i], tags[i], **options)
        times.append(time.perf_counter() - t0)
        check_equal(ae.decode(heat[i : i + 1], tags[i : i + 1], REF, **options)[0], ref)
    return 1000 * statistics.median(times) if times else float("nan")


def per_image(label, size, dim, people, n_images, n_reference, repeats, refine, seed):
    heat, tags = make_batch(seed, n_images, people, size, dim)
    options = {"refine": refine}

    def ours(h, t):
        return ae.decode(h, t, REF, num_threads=1, **options)

    ours_ms = image_ms(ours, heat, tags, n_images, repeats)
    found = [len(ours(heat[i : i + 1], tags[i : i + 1])[0]) for i in range(n_images)]
    ref_ms = reference_ms(heat, tags, n_reference, options)
    return (
        label,
        f"{people}",
        f"{statistics.median(found):.0f}",
        "on" if refine else "off",
        f"{ours_ms:.2f}",
        f"{ref_ms:.1f}",
        f"{ref_ms / ours_ms:.0f}x",
    )


# --- mmpose 1.3.2 ------------------------------------------------------------------------
#: mmpose's COCO config (decode_keypoint_order), the same order as ae.decode's default
MMPOSE_ORDER = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]


def load_mmpose():
    """mmpose's codec class, or a note saying why there is none."""
    try:
        import mmpose
        from mmpose.codecs import AssociativeEmbedding
    except ImportError as err:
        return None, f"mmpose not installed ({err}); its columns are skipped"
    if mmpose.__version__ != "1.3.2":
        return None, f"mmpose {mmpose.__version__} installed, 1.3.2 expected; skipped"
    return AssociativeEmbedding, f"mmpose {mmpose.__version__}"


class Mmpose:
    """mmpose 1.3.2's codec with its COCO config's decode settings, on one map size."""

    def __init__(self, codec_cls, h, w):
        import torch

        self.torch = torch
        # input size == heatmap size: scale_factor 1, coordinates stay in heatmap pixels
        self.codec = codec_cls(
            input_size=(w, h),
            heatmap_size=(w, h),
            decode_keypoint_order=MMPOSE_ORDER,
            decode_nms_kernel=5,
            decode_keypoint_thr=0.1,
            decode_tag_thr=1.0,
            decode_topk=30,
            decode_center_shift=0.5,
            decode_max_instances=30,
        )

    def inputs(self, heat, tags):
        """Tensors in mmpose's layout: heatmaps (B, K, H, W), tags (B, D*K, H, W)."""
        b, k, d, h, w = tags.shape
        flat = np.ascontiguousarray(tags.transpose(0, 2, 1, 3, 4)).reshape(b, d * k, h, w)
        return self.torch.from_numpy(heat), self.torch.from_numpy(flat)

    def decode(self, heat_t, tags_t):
        return self.codec.batch_decode(heat_t, tags_t)


def check_same_as_mmpose(poses, result):
    """Raise unless ``poses`` holds mmpose's people: same count, coordinates and scores."""
    (kp,), (scores,), (person,) = result
    order = np.argsort(-person, kind="stable")  # decode's order: score, then creation
    kp, scores, person = kp[order], scores[order], person[order]
    if len(poses) != len(person):
        raise AssertionError(f"decode found {len(poses)} people, mmpose {len(person)}")
    for name, got, want in (
        ("coordinates", poses.keypoints[..., :2], kp),
        ("joint scores", poses.keypoints[..., 2], scores),
        ("person scores", poses.scores, person),
    ):
        if not np.allclose(got, want, rtol=1e-6, atol=1e-5):
            worst = float(np.nanmax(np.abs(got - want)))
            raise AssertionError(f"decode's {name} differ from mmpose's by up to {worst}")


def memory_bandwidth(repeats=5):
    """Bytes per second a numpy sum over a 256 MiB float32 array reads (best of repeats)."""
    big = np.ones(64 * 2**20, np.float32)
    big.sum()
    best = min(median_time(big.sum, 1) for _ in range(repeats))
    return big.nbytes / best


def against_baselines(label, size, dim, people, n_images, n_reference, repeats, seed, mm, bw):
    """One row: ours (both presets), mmpose, the reference parser, the memory floor."""
    heat, tags = make_batch(seed, n_images, people, size, dim)
    mm_config = ae.DecodeConfig.preset("mmpose-1.x")

    def ours(h, t):
        return ae.decode(h, t, REF, num_threads=1)

    def ours_mm(h, t):
        return ae.decode(h, t, mm_config, num_threads=1)

    ours_ms = image_ms(ours, heat, tags, n_images, repeats)
    ours_mm_ms = image_ms(ours_mm, heat, tags, n_images, repeats)
    found = statistics.median(
        len(ours(heat[i : i + 1], tags[i : i + 1])[0]) for i in range(n_images)
    )
    ref_ms = reference_ms(heat, tags, n_reference, {})
    if mm is not None:
        codec = Mmpose(mm, size, size)
        inputs = [codec.inputs(heat[i : i + 1], tags[i : i + 1]) for i in range(n_images)]
        for i, (h, t) in enumerate(inputs):
            check_same_as_mmpose(ours_mm(heat[i : i + 1], tags[i : i + 1])[0], codec.decode(h, t))
        times = [median_time(lambda h=h, t=t: codec.decode(h, t), repeats) for h, t in inputs]
        mm_ms = 1000 * statistics.median(times)
        mm_cols = (f"{mm_ms:.1f}", f"{mm_ms / ours_mm_ms:.0f}x")
    else:
        mm_cols = ("skipped", "")
    floor_ms = 1000 * (heat[0].nbytes + tags[0].nbytes) / bw
    return (
        label,
        f"{people}",
        f"{found:.0f}",
        f"{ours_ms:.2f}",
        f"{ref_ms:.1f}",
        f"{ref_ms / ours_ms:.0f}x",
        f"{ours_mm_ms:.2f}",
        *mm_cols,
        f"{floor_ms:.3f}",
        f"{ours_ms / floor_ms:.1f}x",
    )


def single_vs_batched(size, dim, people, batch, repeats, seed):
    """One-image calls against one batched call, one thread and all threads."""
    import numba

    heat, tags = make_batch(seed, batch, people, size, dim)
    n_all = max(1, int(numba.config.NUMBA_NUM_THREADS))

    def singles():
        for i in range(batch):
            ae.decode(heat[i : i + 1], tags[i : i + 1], REF, num_threads=1)

    singles()
    one_by_one = median_time(singles, repeats)
    rows = [("one-image calls", "1", one_by_one)]
    for threads in sorted({1, n_all}):
        ae.decode(heat, tags, REF, num_threads=threads)
        sec = median_time(lambda t=threads: ae.decode(heat, tags, REF, num_threads=t), repeats)
        rows.append(("one batched call", f"{threads}", sec))
    return [
        (label, threads, f"{1000 * sec / batch:.2f}", f"{one_by_one / sec:.2f}x")
        for label, threads, sec in rows
    ]


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

    from associative_embedding import DecodeConfig
    from associative_embedding._decode.options import build, capacity, joint_order
    from associative_embedding._decode.people import People, empty_people
    from associative_embedding._decode.pipeline import decode_image

    heat, tags = make_batch(seed, batch, people, size, dim)
    n_all = max(1, int(numba.config.NUMBA_NUM_THREADS))
    rows = []
    one = median_time(lambda: ae.decode(heat, tags, REF, num_threads=1), repeats)
    pool = median_time(lambda: ae.decode(heat, tags, REF, num_threads=n_all), repeats)

    results = [(1, "thread pool (decode)", one), (n_all, "thread pool (decode)", pool)]
    if with_prange:
        config = DecodeConfig.preset("higherhrnet")
        b, k, h, w = heat.shape
        opts = build(config, k, h, w, heat.dtype)

        # a parfor cannot take the nested options tuple as an argument: numba freezes it
        # as a constant of the closure instead (the pool's kernels take it as an argument)
        @njit(parallel=True, nogil=True)
        def run_prange(heat, tags, order, out, out_n):
            for b in prange(heat.shape[0]):
                people = People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])
                out_n[b] = decode_image(heat[b], tags[b], order, opts, people)

        cap = capacity(config, k, opts.max_candidates)
        tag5 = tags.reshape(b, k, dim, h, w)
        order = joint_order(config, k)
        outs = (empty_people((b,), cap, k, dim, heat.dtype), np.zeros(b, np.int64))
        t0 = time.perf_counter()
        run_prange(heat, tag5, order, *outs)
        compile_s = time.perf_counter() - t0
        par = median_time(lambda: run_prange(heat, tag5, order, *outs), repeats)
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


def table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer images and repeats")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--no-mmpose", action="store_true", help="skip mmpose's codec")
    args = parser.parse_args(argv)

    import numba

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, NUMBA_NUM_THREADS="
        f"{numba.config.NUMBA_NUM_THREADS}"
    )
    print(cpu_description())
    mm, note = (None, "mmpose skipped (--no-mmpose)") if args.no_mmpose else load_mmpose()
    print(note)
    if mm is not None:
        import torch

        torch.set_num_threads(1)  # one image per call on one thread, as decode's rows
    ae.warmup()
    if args.smoke:
        headline = [("17x64x64 D=1", 64, 1, 5, 2, 1, 2)]
        sizes = [("17x64x64 D=1", 64, 1, 5, 2, 2, 3, True)]
        big = []
        single = (64, 1, 5, 4, 2)
        batch = (64, 1, 5, 8, 2)
    elif args.quick:
        headline = [
            ("17x128x128 D=1", 128, 1, 10, 6, 3, 5),
            ("17x256x256 D=2", 256, 2, 10, 4, 2, 3),
        ]
        sizes = [("17x128x128 D=1", 128, 1, p, 6, 3, 5, r) for p in (5, 10, 20, 30) for r in (1, 0)]
        big = [("17x512x512 D=2", 512, 2, 30, 3, 1, 3, True)]
        single = (128, 1, 10, 32, 3)
        batch = (128, 1, 20, 64, 3)
    else:
        headline = [
            ("17x128x128 D=1", 128, 1, 10, 10, 5, 10),
            ("17x256x256 D=2", 256, 2, 10, 6, 3, 5),
        ]
        sizes = [
            ("17x128x128 D=1", 128, 1, p, 10, 5, 10, r) for p in (5, 10, 20, 30) for r in (1, 0)
        ]
        big = [("17x512x512 D=2", 512, 2, 30, 5, 3, 5, True)]
        single = (128, 1, 10, 64, 5)
        batch = (128, 1, 20, 64, 5)
    bw = memory_bandwidth()
    rows = [against_baselines(*spec, seed=50 + i, mm=mm, bw=bw) for i, spec in enumerate(headline)]
    table(
        f"One image per call, one thread, refine on (median ms); memory floor: heatmaps + tags "
        f"read once at {bw / 1e9:.1f} GB/s (numpy sum, this run)",
        [
            "maps",
            "people",
            "found",
            "ours",
            "reference",
            "ref/ours",
            "ours (mmpose-1.x)",
            "mmpose 1.3.2",
            "mmpose/ours",
            "memory floor",
            "ours/floor",
        ],
        rows,
    )
    rows = []
    for seed, (label, size, dim, people, n_img, n_ref, reps, refine) in enumerate(sizes + big):
        rows.append(per_image(label, size, dim, people, n_img, n_ref, reps, bool(refine), seed))
    table(
        "Per image, one thread (median ms); reference: tests/reference_parser.py (numpy, munkres)",
        ["maps", "people", "found", "refine", "decode ms", "reference ms", "ratio"],
        rows,
    )
    size, dim, people, b, reps = single
    table(
        f"{b} images at 17x{size}x{size}, D={dim}, {people} people, refine on: one call per "
        "image or one call for all",
        ["calls", "threads", "ms / image", "vs one-image calls"],
        single_vs_batched(size, dim, people, b, reps, seed=98),
    )
    size, dim, people, b, reps = batch
    table(
        f"Batch of {b} at 17x{size}x{size}, D={dim}, {people} people, refine on",
        ["parallelism", "threads", "ms / image", "images / s", "vs 1 thread"],
        batched(size, dim, people, b, reps, seed=99, with_prange=not args.smoke),
    )


def cpu_description():
    """``lscpu``'s model name and which of avx2, avx512f, avx512_bf16, amx_bf16 it has."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"CPU: {platform.processor() or 'unknown'} (lscpu unavailable)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "unknown").strip()
    flags = set(fields.get("Flags", "").split())
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"CPU: {model}; flags: {', '.join(have) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}"


if __name__ == "__main__":
    main()
