"""Time from a fresh process to its first decoded image, with and without numba's cache.

Every row runs in a new Python process with ``NUMBA_CACHE_DIR`` set:

- empty cache: a new empty folder, so every kernel compiles; the process imports the
  package, decodes one float32 image, then one float64 image (the float64 kernels
  compile separately). On a machine with two cores or more, a second process compiles
  the missing-joint search meanwhile (``_compile_ahead``);
- empty cache, one process: the same with ``ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES=1``,
  every kernel compiled in the decoding process, one after another;
- warm cache: the same folder, now filled by the row above, so the kernels load;
- unwritable cache folder: ``NUMBA_CACHE_DIR`` names a folder that cannot be created
  (a path below a regular file). Numba then falls back to its next cache location
  (``__pycache__`` next to the package's sources, else the user's cache folder); the
  row shows where the kernels went and that decoding still works;
- read-only filled cache (only where file permissions apply, i.e. not as root): the
  warm folder made read-only.

Columns: seconds to import the package, to the first float32 image, to the float64
image after it, and the whole process as seen from outside (interpreter start
included); the CPU seconds the process and the compiling process it started used
(``time.process_time`` and ``RUSAGE_CHILDREN``: on a shared machine wall times stretch,
CPU times much less); the kernel cache numba used.

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
print(json.dumps({
    "import": t_import, "float32": t_f32, "float64": t_f64,
    "cpu": time.process_time() + children_cpu(),
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
        f"{r['process']:.2f}",
        f"{r['cpu']:.2f}",
        f"{how} {where}",
    )


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
            "process",
            "process CPU",
            "kernels",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
