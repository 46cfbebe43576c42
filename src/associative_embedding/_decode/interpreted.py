"""The decoder's kernels run by the Python interpreter, while numba compiles them elsewhere.

With an empty numba cache, the first :func:`~associative_embedding.decode` of
a work dtype starts a process that compiles the kernels into the cache
(``compile_ahead.start_background``) and decodes with :func:`interpreted`
kernels meanwhile: the kernels' own Python source (``dispatcher.py_func``),
each rebound so that every kernel it calls is also interpreted. One source,
so the same arithmetic, step by step: numpy scalars of the maps' dtype, as
numba's types. Two things differ in the interpreter and are mended here:

- numba's ``uint64(v)``, with which some loops index arrays (numba then
  emits no negative-index test), wraps modulo 2**64 as a machine integer
  does. Here it is Python's ``int(v)``: exact integers give the same sums
  and differences modulo 2**64, and the kernels only index with them, every
  index within the array (an offset such as ``uint64(xs - o)``, which may
  wrap below zero, is added back before it indexes);
- numpy reports invalid operations on scalars (``inf - inf`` in the
  finiteness checks) with ``RuntimeWarning``; the kernels test those values
  themselves, so :func:`run` silences them.

``tests/test_interpreted.py`` checks that interpreted and compiled kernels
return the same people, bit for bit, on random scenes of every kernel path
and dtype.
"""

from __future__ import annotations

import threading
import types
from typing import Any

import numpy as np
from numba.core.dispatcher import Dispatcher

_FUNCTIONS: dict[Any, types.FunctionType] = {}
_GLOBALS: dict[int, dict[str, Any]] = {}
_LOCK = threading.RLock()


def interpreted(kernel: Any) -> types.FunctionType:
    """Return ``kernel`` (a numba dispatcher) as a Python function that calls no compiled code.

    The function runs ``kernel.py_func``'s code with its module's globals,
    but with every numba dispatcher in them replaced by its interpreted
    function (recursively) and ``uint64`` by ``int``. Built once per kernel
    and process.
    """
    if not isinstance(kernel, Dispatcher):
        raise TypeError(f"kernel must be a numba dispatcher, got {type(kernel).__name__}")
    with _LOCK:
        return _interpreted(kernel)


def _interpreted(kernel: Dispatcher) -> types.FunctionType:
    function = _FUNCTIONS.get(kernel)
    if function is not None:
        return function
    source = kernel.py_func
    namespace = _GLOBALS.get(id(source.__globals__))
    if namespace is None:
        namespace = dict(source.__globals__)
        _GLOBALS[id(source.__globals__)] = namespace
        if "uint64" in namespace:
            namespace["uint64"] = int
        pending = [
            (name, value)
            for name, value in source.__globals__.items()
            if isinstance(value, Dispatcher)
        ]
    else:
        pending = []
    function = types.FunctionType(
        source.__code__, namespace, source.__name__, source.__defaults__, source.__closure__
    )
    function.__doc__ = source.__doc__
    _FUNCTIONS[kernel] = function
    for name, value in pending:  # after registering: kernels of one module call each other
        namespace[name] = _interpreted(value)
    return function


def run(function: types.FunctionType, *args: Any) -> Any:
    """Call an :func:`interpreted` kernel, numpy's floating-point warnings off."""
    with np.errstate(all="ignore"):
        return function(*args)
