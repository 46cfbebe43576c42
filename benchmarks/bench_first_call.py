"""Time from a fresh process to its first decoded image, with and without numba's cache.

Every row runs in a new Python process with ``NUMBA_CACHE_DIR`` set:

- empty cache: a new empty folder. The process imports the package, decodes one
  float32 image, then one float64 image. Each work dtype's first decode starts a
  background process that compiles its kernels into the cache (itself split over two
  processes where there are two cores or more) and is interpreted meanwhile
  (``_decode/interpreted.py``); the process then waits for both compiles to end and
  decodes the float32 image once more with the compiled kernels, which numba loads
  from the cache;
- empty cache, one process: the same with ``ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES=1``:
  no background process, every kernel compiled in the decoding process, one after
  another, before the first image;
- warm cache: the same folder, now filled by the first row, so the kernels load;
- unwritable cache folder: ``NUMBA_CACHE_DIR`` names a folder that cannot be created
  (a path below a regular file). Numba then falls back to its next cache location
  (``__pycache__`` next to the package's sources, else the user's cache folder); the
  row shows where the kernels went and that decoding still works;
- read-only filled cache (only where file permissions apply, i.e. not as root): the
  warm folder made read-only.

Columns: seconds to import the package, to the first float32 image, to the float64
image after it; seconds from the process's start until the float32 and the float64
background compiles ended (``-``: none ran); the compiled float32 call after them
(loading the kernels included); the whole process as seen from outside
(interpreter start included); the CPU seconds the process and the compiling
processes it started used (``time.process_time`` and ``RUSAGE_CHILDREN``: on a
shared machine wall times stretch, CPU times much less); the kernel cache numba
used.

Usage::

    python benchmarks/bench_first_call.py          # minutes: compiles twice from scratch
    python benchmarks/bench_first_call.py --smoke  # seconds: the caller's (filled) cache only

``python -m associative_embedding warmup`` fills the cache ahead of time (install
scripts, container builds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_decode import table  # noqa: E402

CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
import associative_embedding as ae
t_import = time.perf_counter() - t0
from associative_embedding._decode import pipeline as _batch

def image(dtype):
    heat = np.zeros((1, 17, 64, 64), dtype)
    heat[0, :, 20, 30] = 1.0
    heat[0, :9, 40, 10] = 0.8
    tags = np.zeros((1, 17, 64, 64), dtype)
    tags[0, :, 40, 10] = 3.0
    return heat, tags

def children_cpu():
    try:
        import resource
    except ImportError:  # not on Unix
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

t1 = time.perf_counter()
(p32,) = ae.decode(*image(np.float32))
t_f32 = time.perf_counter() - t1
t1 = time.perf_counter()
(p64,) = ae.decode(*image(np.float64))
t_f64 = time.perf_counter() - t1
assert len(p32) == len(p64) == 2, (len(p32), len(p64))
# the background compiles (empty cache): when each ended, then a call of the compiled kernel
from associative_embedding._decode import compile_ahead as _ca
ready = {}
for key, background in _ca._BACKGROUND.items():
    background.wait()
    assert background.ok, key
    ready[key.split("-")[0]] = background.ended_at - t0
t1 = time.perf_counter()
(c32,) = ae.decode(*image(np.float32))
t_compiled = time.perf_counter() - t1
assert np.array_equal(c32.keypoints, p32.keypoints, equal_nan=True)
print(json.dumps({
    "import": t_import, "float32": t_f32, "float64": t_f64, "ready": ready,
    "compiled": t_compiled, "cpu": time.process_time() + children_cpu(),
    # the defaults' batch kernel (the crowd grouping)
    "cache": _batch.decode_range_crowd.stats.cache_path,
    "hits": sum(_batch.decode_range_crowd.stats.cache_hits.values()),
}))
"""


def run_child(cache_dir: str | None, processes: int | None = None) -> dict:
    """Run :data:`CHILD` in a new interpreter with ``NUMBA_CACHE_DIR=cache_dir``.

    ``None`` keeps the caller's environment (its cache, or numba's default);
    ``processes`` sets ``ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES``.
    """
    env = dict(os.environ)
    if processes is not None:
        env["ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES"] = str(processes)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - t0
    return result


def row(label: str, r: dict, cache_dir: str | None) -> tuple[str, ...]:
    if r["ready"]:
        how = "compiled in the background into"
    else:
        how = "loaded from" if r["hits"] else "compiled into"
    where = r["cache"]
    if cache_dir and where.startswith(cache_dir):
        where = "NUMBA_CACHE_DIR"
    elif where.startswith(str(ROOT / "src")):
        where = "__pycache__ next to the sources"
    return (
        label,
        f"{r['import']:.2f}",
        f"{r['float32']:.2f}",
        f"{r['float64']:.2f}",
        *(f"{r['ready'][k]:.2f}" if k in r["ready"] else "-" for k in ("float32", "float64")),
        f"{r['compiled']:.3f}",
        f"{r['process']:.2f}",
        f"{r['cpu']:.2f}",
        f"{how} {where}",
    )


def scene(rng, k: int, size: int, people: int, d: int = 1, noise: float = 0.02):
    """Gaussian peaks of ``people`` random people (tags: the person's number), noise."""
    heat = rng.uniform(0.0, noise, (1, k, size, size)).astype(np.float32)
    tags = rng.normal(0.0, 0.05, (1, k, d, size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for person in range(people):
        cx, cy = rng.uniform(0.15 * size, 0.85 * size, 2)
        for j in range(k):
            x, y = cx + rng.normal(0, size / 16), cy + rng.normal(0, size / 10)
            near = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
            heat[0, j] = np.maximum(heat[0, j], near)
            tags[0, j, :, near > 0.3] = person
    return heat, tags


def interpreted_rows(repeat: int = 3) -> list[tuple[str, ...]]:
    """Per image: the defaults' batch kernel interpreted (as while it compiles) and compiled."""
    import associative_embedding as ae
    from associative_embedding._decode import options as o
    from associative_embedding._decode.compile_ahead import batch_kernel
    from associative_embedding._decode.interpreted import interpreted, run
    from associative_embedding._decode.people import empty_people

    rng = np.random.default_rng(0)
    cases = [
        ("17x64x64, 2 people", scene(rng, 17, 64, 2)),
        ("17x128x128, 6 people", scene(rng, 17, 128, 6)),
        ("17x128x128, 6 people, D=2", scene(rng, 17, 128, 6, d=2)),
        ("17x256x256, 12 people", scene(rng, 17, 256, 12)),
        (
            "17x128x128, noise peaks",
            (
                rng.random((1, 17, 128, 128), np.float32) ** 8,
                rng.normal(size=(1, 17, 1, 128, 128)).astype(np.float32),
            ),
        ),
    ]
    config = ae.DecodeConfig()
    rows = []
    for label, (heat, tags) in cases:
        _, k, d, h, w = tags.shape
        opts = o.build(config, k, h, w, heat.dtype)
        path = o.kernel_path(config, opts)
        record, order = o.kernel_record(opts, path), o.joint_order(config, k)
        kernel = batch_kernel(path)
        cap = o.capacity(config, k, opts.max_candidates)
        times, counts = [], []
        slow = interpreted(kernel)
        for call in (lambda *a, slow=slow: run(slow, *a), kernel):
            best = np.inf
            for _ in range(repeat):
                out = empty_people((1,), cap, k, d, heat.dtype)
                out_n = np.zeros(1, np.int64)
                t0 = time.perf_counter()
                call(heat, tags, order, record, (0, 1), out, out_n)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
            counts.append(int(out_n[0]))
        assert counts[0] == counts[1], counts
        rows.append(
            (
                label,
                str(counts[0]),
                f"{times[0] * 1e3:.0f}",
                f"{times[1] * 1e3:.2f}",
                f"{times[0] / times[1]:.0f}x",
            )
        )
    return rows


def permissions_apply(folder: Path) -> bool:
    """Whether a read-only folder refuses writes here (it does not for root)."""
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return True
    probe.unlink()
    return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="warm-cache row only (seconds), for CI"
    )
    args = parser.parse_args(argv)

    import numba

    print(
        f"python {platform.python_version()}, numba {numba.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if args.smoke:
            # the caller's cache (NUMBA_CACHE_DIR or numba's default): fill it, then time
            # a process that loads from it
            run_child(None)
            rows.append(row("caller's cache, warm", run_child(None), None))
        else:
            cache.mkdir()
            single = Path(tmp) / "single"
            single.mkdir()
            rows.append(row("empty (compile)", run_child(str(cache)), str(cache)))
            rows.append(row("empty, one process", run_child(str(single), 1), str(single)))
            rows.append(row("warm (load)", run_child(str(cache)), str(cache)))
            blocker = Path(tmp) / "a-file"
            blocker.touch()
            bad = str(blocker / "cache")
            rows.append(row("cannot be created", run_child(bad), bad))
            for p in [cache, *cache.rglob("*")]:
                p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            if permissions_apply(cache):
                rows.append(row("warm, read-only", run_child(str(cache)), str(cache)))
            else:
                print("warm, read-only: skipped, file permissions do not apply here (root)")
            for p in [cache, *cache.rglob("*")]:
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    table(
        "Fresh process to first decoded image (s); 17x64x64 maps, D=1",
        [
            "NUMBA_CACHE_DIR",
            "import",
            "1st float32",
            "then float64",
            "float32 compiled",
            "float64 compiled",
            "compiled call",
            "process",
            "process CPU",
            "kernels",
        ],
        rows,
    )
    if not args.smoke:
        table(
            "Defaults' kernel per image, interpreted (while it compiles) and compiled; "
            "one thread, best of 3",
            ["maps", "people", "interpreted (ms)", "compiled (ms)", "ratio"],
            interpreted_rows(),
        )


if __name__ == "__main__":
    main()
