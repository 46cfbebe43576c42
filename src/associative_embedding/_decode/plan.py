"""The Python side of a numpy decode: a plan per call signature, run over a batch.

A :class:`Plan` holds everything a call derives from its arguments' metadata
(the kernels' option record, the joint order, the kernel, the people's
capacity); :meth:`Plan.run` allocates the outputs, runs the kernel on the
thread pool and returns one :class:`~associative_embedding.Poses` per image.
:func:`cached_plan` keeps one plan per (config, shapes, dtype, threads) for
plain numpy arrays, so that a repeated one-image call validates nothing it
has seen and runs the kernel directly: next to a kernel of a few tenths of a
millisecond, Python's share matters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_finite
from ..config import DecodeConfig
from ..poses import Poses
from . import options as _options
from .people import People, empty_people
from .threads import run_chunks


class Plan:
    """A decode of maps ``(B, K, H, W)`` with D tag dimensions in the work ``dtype``.

    With the batch kernel neither in memory nor in numba's cache, a
    background process compiles it (``compile_ahead.start_background``) and
    :meth:`run` interprets the kernel meanwhile
    (``interpreted.interpreted``), image by image, until the process has
    ended; it then calls the compiled kernel, which numba loads from the
    cache (or compiles here, should the process have failed).
    """

    __slots__ = (
        "background",
        "cap",
        "d",
        "dtype",
        "kernel",
        "opts",
        "order",
        "path",
        "tag_shape",
        "threads",
    )

    def __init__(
        self, config: DecodeConfig, shape: tuple[int, ...], d: int, dtype: np.dtype, threads: int
    ) -> None:
        from .compile_ahead import announce, batch_kernel, start_background
        from .compile_ahead import prepare as prepare_kernels

        b, k, h, w = shape
        self.dtype = np.dtype(dtype)
        opts = _options.build(config, k, h, w, self.dtype)
        self.order = _options.joint_order(config, k)
        self.path = _options.kernel_path(config, opts)
        self.opts = _options.kernel_record(opts, self.path)
        self.kernel = batch_kernel(self.path)
        self.cap = _options.capacity(config, k, opts.max_candidates)
        self.tag_shape = (b, k, d, h, w)
        self.d = d
        self.threads = threads
        args = self._typed_args()
        self.background = start_background(
            self.kernel, args, self.dtype, self.opts, self.order, self.path
        )
        what = f"decoder's kernels for {self.dtype.name} maps"
        announce(self.kernel, args, what, background=self.background is not None)
        if self.background is None:
            prepare_kernels(self.dtype, self.opts, self.order, self.path)

    def _typed_args(self) -> tuple[Any, ...]:
        """Arguments of the plan's kernel call with its types (1-long arrays)."""
        heat = np.zeros((1, 1, 1, 1), self.dtype)
        tags = np.zeros((1, 1, 1, 1, 1), self.dtype)
        out = empty_people((1,), 1, 1, 1, self.dtype)
        return (heat, tags, self.order, self.opts, (0, 1), out, np.zeros(1, np.int64))

    def run(self, heat: np.ndarray, tags: np.ndarray) -> list[Poses]:
        """Decode C-contiguous, writeable maps of the plan's shapes and work dtype."""
        b, k = self.tag_shape[:2]
        tag = tags.reshape(self.tag_shape)
        out = empty_people((b,), self.cap, k, self.d, self.dtype)
        out_n = np.zeros(b, np.int64)
        start = 0 if self.background is None else self._interpret(heat, tag, out, out_n)
        if start < b:
            kernel, order, opts = self.kernel, self.order, self.opts
            run_chunks(
                lambda i, j: kernel(heat, tag, order, opts, (start + i, start + j), out, out_n),
                b - start,
                self.threads,
            )
        counts = out_n.tolist()  # a list's min: about 1 µs less per call than numpy's
        if counts and min(counts) < 0:
            check_finite(heat, "heatmaps")
            check_finite(tag, "tags")
            raise ValueError("heatmaps or tags contain NaN or infinite values")
        return collect(out, counts)

    def _interpret(self, heat: np.ndarray, tag: np.ndarray, out: People, out_n: np.ndarray) -> int:
        """Decode images with the interpreted kernel until the background compile has ended.

        Returns the first image left to the compiled kernel (B once all are done).
        """
        from .compile_ahead import prepare as prepare_kernels
        from .interpreted import interpreted, run

        function = interpreted(self.kernel)
        for i in range(heat.shape[0]):
            background = self.background
            if background is None or background.ready():
                if background is not None and not background.ok:  # compile here instead
                    prepare_kernels(self.dtype, self.opts, self.order, self.path)
                self.background = None
                return i
            run(function, heat, tag, self.order, self.opts, (i, i + 1), out, out_n)
        return heat.shape[0]


def collect(out: People, counts: list[int]) -> list[Poses]:
    """One :class:`Poses` per image from the kernels' batch of people, ``counts[i]`` each."""
    return [
        Poses(out.kp[i, :n].copy(), out.score[i, :n].copy(), out.tag[i, :n].copy())
        for i, n in enumerate(counts)
    ]


_PLANS: dict[tuple[Any, ...], tuple[DecodeConfig | None, Plan]] = {}


def cache_key(heatmaps: Any, tags: Any, config: Any, num_threads: Any) -> tuple[Any, ...] | None:
    """Return the key of a call whose plan can be kept, or None.

    Only plain numpy arrays that the kernels take as they are (one dtype,
    float32 or float64 in the machine's byte order, C-contiguous and
    writeable; anything else is converted first), with a ``DecodeConfig`` or
    None and a thread count that is an int or None.
    """
    if type(heatmaps) is not np.ndarray or type(tags) is not np.ndarray:
        return None
    if not (config is None or type(config) is DecodeConfig):
        return None
    if not (num_threads is None or type(num_threads) is int):
        return None
    dtype = heatmaps.dtype
    if dtype != tags.dtype or dtype.type not in (np.float32, np.float64) or not dtype.isnative:
        return None
    f_heat, f_tags = heatmaps.flags, tags.flags
    if not (f_heat.c_contiguous and f_heat.writeable and f_tags.c_contiguous and f_tags.writeable):
        return None
    return (id(config), heatmaps.shape, tags.shape, dtype, num_threads)


def cached_plan(key: tuple[Any, ...] | None, config: Any) -> Plan | None:
    """Return the plan kept for ``key`` (from :func:`cache_key`), or None."""
    hit = None if key is None else _PLANS.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    return None


def remember(key: tuple[Any, ...] | None, config: Any, plan: Plan) -> None:
    """Keep ``plan`` for later calls with ``key`` (nothing if ``key`` is None)."""
    if key is None:
        return
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[key] = (config, plan)  # holding config keeps its id from being reused
