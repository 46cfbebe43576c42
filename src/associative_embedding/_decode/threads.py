"""The pool of threads that runs the decoder's GIL-free kernels over a batch."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def default_threads() -> int:
    try:
        import numba

        return max(1, int(numba.config.NUMBA_NUM_THREADS))
    except Exception:  # pragma: no cover - numba always importable here
        return max(1, os.cpu_count() or 1)


def _pool(n: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ae-decode")
            _POOLS[n] = pool
        return pool


def run_chunks(fn: Any, n_items: int, n_threads: int) -> None:
    """Call ``fn(start, stop)`` on contiguous chunks of ``range(n_items)`` on ``n_threads``.

    Four chunks per thread, taken in order by the pool's workers, even out images
    of unequal cost; ``fn`` calls a ``nogil`` kernel, so the workers run in parallel.
    """
    n_threads = max(1, min(n_threads, n_items))
    if n_threads == 1:
        fn(0, n_items)
        return
    n_chunks = min(n_items, 4 * n_threads)
    bounds = np.linspace(0, n_items, n_chunks + 1).round().astype(int)
    pool = _pool(n_threads)
    futures = [pool.submit(fn, int(bounds[i]), int(bounds[i + 1])) for i in range(n_chunks)]
    for f in futures:
        f.result()
