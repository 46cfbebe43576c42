"""The decoder's first compilation: in a background process, split over two processes.

With an empty numba cache the first :func:`~associative_embedding.decode` of a
work dtype does not wait for numba: :func:`start_background` starts a Python
process that compiles the batch kernel into numba's cache
(:func:`background_main`), and ``plan.Plan`` runs the kernels in the
interpreter (``interpreted.py``) until that process has ended. The process
goes on if the decoding process ends first, so that the next one finds the
cache filled. Where it cannot start (below), the decoding process compiles
as the background process does, before its first image.

Compiling means many kernels, one after another, in one process. Before the
batch kernel compiles, a second Python process compiles part of them
(:data:`CHILD_KERNELS`) into numba's on-disk cache while this one compiles the
rest; when the child is done, the batch kernel is compiled here and finds the
child's kernels in the cache instead of compiling them. For the references'
kernels (``pipeline.decode_range``) the child compiles the missing-joint
search ``missing.refine_image``; for the crowd grouping, the defaults'
(``pipeline.decode_range_crowd``), the peak search ``peaks.find_candidates``,
the missing-joint search ``missing.refine_crowd``, ``crowd.select_people``
and ``people.write_people``, while this process compiles
``peaks.gather_candidates``, ``matching.first_pass``, ``crowd.limbs_fit`` and
``crowd.regroup`` (the two shares take about as long); for
``"crowd-whole-map"`` the child compiles ``missing.refine_image``,
``crowd.select_people``, ``crowd.limbs_fit`` and ``people.write_people``.
:func:`start_warmup_child` serves ``warmup``: a second process compiles the
references' kernels, the tensor path's and ``decode_instances``' while
``warmup`` compiles the crowd kernels, with the split above.

Neither process starts when it cannot help: the kernels are cached already (or
in memory), numba's cache is not writable, numba's JIT is off,
``sys.executable`` is not a Python interpreter (an application that embeds
one), or ``ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES=1`` is set; the split
needs more than one core as well, and ``warmup`` (:func:`warming`) starts no
background process. A child that fails or takes more than
:data:`CHILD_TIMEOUT` seconds is ignored: the batch kernel then compiles
those kernels itself, as without the child; a background process that fails
or takes more than :data:`BACKGROUND_TIMEOUT` seconds leaves the decoding
process to compile the kernels itself.

Each kernel is compiled here for exactly the argument types the batch kernel
calls it with; ``tests/test_compile_ahead.py`` checks that a fresh process then
holds one signature of each and loaded the child's kernels from the cache.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

ENV_PROCESSES = "ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES"
CHILD_TIMEOUT = 600.0

_DONE: set[str] = set()
_LOCK = threading.Lock()


def _python_executable() -> bool:
    """Whether ``sys.executable`` is a Python interpreter (not an application embedding one)."""
    name = PureWindowsPath(sys.executable or "").name.lower()  # either separator
    return name.startswith(("python", "pypy"))


_WARMING = threading.Event()


@contextlib.contextmanager
def warming() -> Iterator[None]:
    """Within: no first-call notice (for ``warmup``, which says what it compiles itself)."""
    _WARMING.set()
    try:
        yield
    finally:
        _WARMING.clear()


def _processes() -> int | None:
    """:data:`ENV_PROCESSES` as a number: None if unset or empty, 0 if not an integer."""
    value = os.environ.get(ENV_PROCESSES, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return 0


def _jit_in_python() -> bool:
    """Whether numba compiles (its JIT is on) and ``sys.executable`` can start a compiler."""
    import numba

    return not numba.config.DISABLE_JIT and _python_executable()


def _enabled() -> bool:
    """Whether a first compilation is split over two processes (more than one core)."""
    import numba

    if not _jit_in_python():
        return False
    value = _processes()
    if value is not None:
        return value > 1
    # the cores this process may run on (os.sched_getaffinity, else os.cpu_count)
    return numba.config.NUMBA_DEFAULT_NUM_THREADS > 1


def _background_enabled() -> bool:
    """Whether a first decode may compile in a background process (on any number of cores)."""
    if _WARMING.is_set() or not _jit_in_python():
        return False
    value = _processes()
    return value is None or value > 1


def _image_args(
    dtype: np.dtype, opts: Any, order: np.ndarray, path: str = "references"
) -> dict[str, tuple[Any, ...]]:
    """Arguments of the per-image kernels, typed as the batch kernel's image step calls them.

    ``path`` (``options.KERNEL_PATHS``) selects the batch kernel: ``"references"``
    ``pipeline.decode_range``, ``"crowd"`` ``pipeline.decode_range_crowd``,
    ``"crowd-whole-map"`` ``pipeline.decode_range_crowd_whole_map``.
    Only the types matter (numba compiles one version per argument types):
    the arrays are 1-long in every axis, C-contiguous like the kernel's slices
    of C-contiguous batches and its own allocations.
    """
    from numba import types

    from .matching import TAG_COST_ROUNDED
    from .peaks import empty_candidates
    from .people import empty_people

    heat = np.zeros((1, 1, 1), dtype)
    tags = np.zeros((1, 1, 1, 1), dtype)
    cand = empty_candidates((), 1, 1, 1, dtype)
    out = empty_people((), 1, 1, 1, dtype)
    joint_of = np.zeros((1, 1), np.int64)
    plane = np.zeros((1, 1), dtype)
    batch_out = empty_people((1,), 1, 1, 1, dtype)
    batch = (heat[None], tags[None], order, opts, (0, 1), batch_out, np.zeros(1, np.int64))
    n = np.int64(1)
    crowd = path != "references"
    args = {
        batch_kernel(path).__name__: batch,
        "find_candidates": (heat, opts.detection_threshold, opts.nms_kernel, cand, plane),
        "gather_candidates": (heat, tags, cand),
        # a constant argument is typed as its literal value
        "first_pass": (
            (cand, order, opts.group, opts.crowd.tag_cost, joint_of, types.literal(True))
            if crowd
            else (cand, order, opts.group, types.literal(TAG_COST_ROUNDED), joint_of, None)
        ),
        "limbs_fit": (cand, joint_of, n, n, opts.crowd),
        "regroup": (cand, n, order, joint_of, n, opts),
        "write_people": (joint_of, n, cand, (n, n), order, opts.group, out, joint_of),
        "refine_image": (heat, tags, np.zeros(1, np.int64), n, cand, opts.refine, out, plane),
        "refine_crowd": (heat, tags, n, cand, out, joint_of, opts, plane),
        "select_people": (out, n, opts.crowd, joint_of, opts.group.tag_threshold),
    }
    return {name: args[name] for name in _PATH_KERNELS[path]}


# The kernels the second process compiles, for each path: about half the work.
CHILD_KERNELS = {
    "references": ("refine_image",),
    "crowd": ("find_candidates", "refine_crowd", "select_people", "write_people"),
    "crowd-whole-map": ("refine_image", "select_people", "limbs_fit", "write_people"),
}


def _kernels(path: str = "references") -> dict[str, Any]:
    """Return the per-image kernels of a path, in the order the batch kernel calls them."""
    from .crowd import limbs_fit, regroup, select_people
    from .matching import first_pass
    from .missing import refine_crowd, refine_image
    from .peaks import find_candidates, gather_candidates
    from .people import write_people

    every = {
        "find_candidates": find_candidates,
        "gather_candidates": gather_candidates,
        "first_pass": first_pass,
        "write_people": write_people,
        "limbs_fit": limbs_fit,
        "regroup": regroup,
        "refine_image": refine_image,
        "refine_crowd": refine_crowd,
        "select_people": select_people,
    }
    return {name: every[name] for name in _PATH_KERNELS[path][1:]}


# every kernel of a path, the batch kernel first, then in the order the batch kernel calls them
_FIRST_PASS = ("find_candidates", "gather_candidates", "first_pass")
_CROWD_GROUPING = (*_FIRST_PASS, "limbs_fit", "regroup", "write_people")
_PATH_KERNELS = {
    "references": ("decode_range", *_FIRST_PASS, "write_people", "refine_image"),
    "crowd": ("decode_range_crowd", *_CROWD_GROUPING, "refine_crowd", "select_people"),
    "crowd-whole-map": (
        "decode_range_crowd_whole_map",
        *_CROWD_GROUPING,
        "refine_image",
        "select_people",
    ),
}


def batch_kernel(path: str) -> Any:
    """Return the batch kernel of ``path`` (``options.KERNEL_PATHS``)."""
    from . import pipeline

    return getattr(pipeline, _PATH_KERNELS[path][0])


def signatures(
    dtype: np.dtype, opts: Any, order: np.ndarray, path: str = "references"
) -> dict[str, tuple[Any, ...]]:
    """Return the numba argument types of each kernel, by name, as the batch kernel calls it."""
    from numba import typeof
    from numba.core.types import Type

    return {
        name: tuple(a if isinstance(a, Type) else typeof(a) for a in args)
        for name, args in _image_args(dtype, opts, order, path).items()
    }


LOGGER = "associative_embedding"
_ANNOUNCED = False


def announce(kernel: Any, args: tuple[Any, ...], what: str, background: bool = False) -> bool:
    """Say once per process, on the ``associative_embedding`` logger, that a compile starts.

    Called before the first call of a batch kernel with these ``args``; logs
    (level WARNING, so that Python prints it to stderr without any logging
    set up) when the kernel is neither in memory nor in numba's cache.
    ``background``: the kernels compile in a background process
    (:func:`start_background`) and decoding is interpreted meanwhile.
    Returns whether it logged. Silence it with
    ``logging.getLogger("associative_embedding").setLevel(logging.ERROR)``.
    """
    global _ANNOUNCED
    if _ANNOUNCED or _WARMING.is_set():
        return False
    import logging

    import numba

    if numba.config.DISABLE_JIT:
        return False
    sig = tuple(_typeof(a) for a in args)
    if _cached(kernel, sig):
        return False
    _ANNOUNCED = True
    if background:
        how = (
            "in a background process (about half a minute with two cores; once: later "
            "processes load them from numba's cache). Until they are ready, decode runs them "
            "in the Python interpreter: the same people, 0.1-1 s per image. "
        )
    else:
        how = (
            "(once: later calls and processes load them from numba's cache); this first "
            "call can take a minute. "
        )
    logging.getLogger(LOGGER).warning(
        "associative_embedding: compiling the %s for this machine %s"
        "Run `python -m associative_embedding warmup` at install time to compile ahead; "
        "silence this message with "
        "logging.getLogger('associative_embedding').setLevel(logging.ERROR).",
        what,
        how,
    )
    return True


def _cached(kernel: Any, sig: tuple[Any, ...]) -> bool:
    """Whether ``kernel`` holds ``sig`` in memory or in numba's on-disk cache."""
    if sig in kernel.overloads:
        return True
    cache = kernel._cache
    try:
        key = cache._index_key(sig, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # an unexpected numba: let the dispatcher decide
        return True


def _cache_writable(kernel: Any) -> bool:
    path = getattr(kernel._cache, "_cache_path", None)
    return bool(path) and os.access(path, os.W_OK)


def _start_child(sigs: dict[str, tuple[Any, ...]]) -> subprocess.Popen[bytes] | None:
    arg = base64.b64encode(pickle.dumps(sigs)).decode("ascii")
    return _spawn("from associative_embedding._decode.compile_ahead import child_main", arg)


def start_warmup_child(dtypes: str) -> subprocess.Popen[bytes] | None:
    """Start a process that compiles the kernels of ``warmup``'s second share into numba's cache.

    ``dtypes``: the work dtypes' names, comma-separated. The child runs
    ``decoding.warm_share("other", dtype)`` for each: the references' kernels,
    the tensor path's and ``decode_instances``'. For
    :func:`~associative_embedding.warmup`; returns None (and starts nothing)
    where a second process cannot help, as for the first call.
    """
    from .pipeline import decode_range

    if not _enabled() or not _cache_writable(decode_range):
        return None
    return _spawn("from associative_embedding.decoding import warm_child as child_main", dtypes)


def _spawn(
    import_line: str, arg: str, *, alone: bool = True, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes] | None:
    """Start ``child_main(arg)`` from ``import_line`` in a new Python process.

    ``alone``: the process compiles everything itself (:data:`ENV_PROCESSES` set
    to 1), else it inherits this process's setting.
    """
    root = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, sys.argv[1]); {import_line}; child_main(sys.argv[2])"
    env = dict(os.environ, **{ENV_PROCESSES: "1"}) if alone else dict(os.environ)
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code, root, arg],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    except OSError:
        return None


def wait_child(child: subprocess.Popen[bytes]) -> bool:
    """Wait for a child (at most :data:`CHILD_TIMEOUT` s); return whether it succeeded."""
    try:
        child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return False
    return child.returncode == 0


def child_main(encoded_signatures: str) -> None:
    """Compile the kernels named in ``encoded_signatures`` (the child's work).

    ``encoded_signatures`` is the pickled ``{name: tuple of numba types}`` of
    the kernels to compile, base64-encoded (from the parent's
    :func:`signatures`); the compiled kernels go to numba's cache.
    """
    sigs = pickle.loads(base64.b64decode(encoded_signatures))
    kernels = {**_kernels("crowd"), **_kernels("crowd-whole-map")}
    for name, sig in sigs.items():
        kernels[name].compile(sig)


def prepare(dtype: np.dtype, opts: Any, order: np.ndarray, path: str = "references") -> bool:
    """Compile the per-image kernels of ``dtype`` before the batch kernel, two processes at once.

    Called before the first batch-kernel call of a work dtype and ``path``
    (``options.KERNEL_PATHS``); returns
    whether a child process compiled its share (:data:`CHILD_KERNELS`). The
    option records' types, not their values, enter the signatures: every
    configuration of a path shares them.
    """
    dtype = np.dtype(dtype)
    key = f"{dtype.name}-{path}"
    with _LOCK:
        if key in _DONE:
            return False
        _DONE.add(key)
        if not _enabled():
            return False
        sigs = signatures(dtype, opts, order, path)
        batch = batch_kernel(path)
        if _cached(batch, sigs[batch.__name__]):
            return False  # loading it loads everything it calls
        kernels = _kernels(path)
        child_sigs = {
            name: sigs[name]
            for name in CHILD_KERNELS[path]
            if not _cached(kernels[name], sigs[name])
        }
        if not child_sigs or not _cache_writable(kernels[CHILD_KERNELS[path][0]]):
            return False
        child = _start_child(child_sigs)
        if child is None:
            return False
        try:
            for name, kernel in kernels.items():
                if name not in CHILD_KERNELS[path]:
                    kernel.compile(sigs[name])
        finally:
            done = wait_child(child)
        return done


# --- the first decode: compile in the background, interpret meanwhile -----------------------
BACKGROUND_TIMEOUT = 1800.0


class Background:
    """A process compiling one work dtype's kernels of one path into numba's cache.

    A thread waits for it (at most :data:`BACKGROUND_TIMEOUT` seconds, then
    stops it); :meth:`ready` says whether it has ended, :attr:`ok` whether it
    succeeded.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.ok = False
        self.ended_at: float | None = None  # time.perf_counter() when it ended
        self._ended = threading.Event()
        threading.Thread(target=self._wait, name="ae-compile-wait", daemon=True).start()

    def _wait(self) -> None:
        try:
            self.ok = self.process.wait(timeout=BACKGROUND_TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            self.ended_at = time.perf_counter()
            self._ended.set()

    def ready(self) -> bool:
        """Whether the process has ended (compiled, failed or stopped)."""
        return self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process has ended; return whether it has."""
        return self._ended.wait(timeout)


_BACKGROUND: dict[str, Background] = {}


def _after_fork() -> None:
    """In a forked child: no thread waits for the parent's background processes there.

    Each counts as failed, so that a plan holding one compiles here (or
    loads the kernels, should the cache hold them by then) instead of
    interpreting for ever; a later first decode may start its own.
    """
    for background in _BACKGROUND.values():
        background.ok = False
        background._ended.set()
    _BACKGROUND.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork)


def start_background(
    kernel: Any, args: tuple[Any, ...], dtype: np.dtype, opts: Any, order: np.ndarray, path: str
) -> Background | None:
    """Compile the batch ``kernel`` of ``path`` for ``args`` in a background process.

    For the first decode of a work dtype with an empty cache: returns the
    :class:`Background` compiling it (one per dtype and path in a process),
    or None where that process has ended already (the kernel then loads from
    the cache, or compiles here if it failed), the kernel is cached or in
    memory already, numba's cache
    is not writable, numba's JIT is off, ``sys.executable`` is not a Python
    interpreter, :data:`ENV_PROCESSES` is 1, or inside :func:`warming`.
    The process runs :func:`prepare` (with the two-process split where there
    is more than one core), then compiles the batch kernel; it goes on if
    this process ends first, so that the cache is filled for the next one.
    """
    key = f"{np.dtype(dtype).name}-{path}"
    with _LOCK:
        running = _BACKGROUND.get(key)
        if running is not None:  # never a second one for the key
            return None if running.ready() else running
        if not _background_enabled() or not _cache_writable(kernel):
            return None
        if _cached(kernel, tuple(_typeof(a) for a in args)):
            return None
        arg = base64.b64encode(pickle.dumps((np.dtype(dtype).name, opts, order, path)))
        process = _spawn(
            "from associative_embedding._decode.compile_ahead import background_main as child_main",
            arg.decode("ascii"),
            alone=False,
            stderr=subprocess.DEVNULL,  # nobody reads it once this process has ended
        )
        if process is None:
            return None
        _BACKGROUND[key] = Background(process)
        return _BACKGROUND[key]


def _typeof(value: Any) -> Any:
    from numba import typeof

    return typeof(value)


def background_main(encoded: str) -> None:
    """Compile the kernels of a first decode (the background process's work).

    ``encoded``: the base64 of the pickled ``(dtype name, options record,
    joint order, path)``. :func:`prepare` splits the per-image kernels over
    this process and a child where there is more than one core; the batch
    kernel is then compiled here, into numba's cache.
    """
    name, opts, order, path = pickle.loads(base64.b64decode(encoded))
    dtype = np.dtype(name)
    prepare(dtype, opts, order, path)
    batch = batch_kernel(path)
    batch.compile(signatures(dtype, opts, order, path)[batch.__name__])
