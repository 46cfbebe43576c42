"""How the decoder's kernels are compiled: one set of numba options for all of them.

:func:`kernel` is ``numba.njit`` with these options, plus any a kernel adds
(``inline="always"``, ``no_cpython_wrapper=True``, ``fastmath``):

- ``cache=True``: compiled once per machine into numba's on-disk cache;
- ``nogil=True``: a pool of threads runs kernels on disjoint images
  (``threads.py``);
- ``no_cfunc_wrapper=True``: no C callback is built; nothing calls one;
- ``error_model="numpy"``: a division by zero gives infinity or NaN instead of
  raising ``ZeroDivisionError``. No kernel divides by a value that can be zero
  (sizes, scales and areas are at least 1, counts are tested first). Python's
  model adds a check and a raise path to every division, and a function with
  a raise path keeps the reference-count updates (two atomic operations per
  array argument per call) that numba otherwise removes: the missing-joint
  search's per-strip kernels kept them on every call. Without both, the
  references' kernel is 2-3 % faster.

A counter passed to a kernel starts as ``np.int64(0)``, not ``0``: numba types
``n = 0`` as the constant ``Literal[int](0)`` until the loop widens it to
``int64``, and compiles the kernel it is passed to once for each type
(``tests/test_compile_ahead.py`` checks that no kernel is compiled twice so).
"""

from __future__ import annotations

from typing import Any

from numba import njit

OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "no_cfunc_wrapper": True,
    "error_model": "numpy",
}


def kernel(**extra: Any) -> Any:
    """``numba.njit(**OPTIONS, **extra)``: the decorator of every decoder kernel."""
    return njit(**OPTIONS, **extra)
