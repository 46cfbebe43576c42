"""The array boundary: input checks and numpy/torch conversion shared by the public functions.

Every check raises ``TypeError`` for a wrong kind or dtype and ``ValueError``
for a wrong shape or value, with a message that names the argument, the
expected layout in dimension letters (B, K, D, H, W, N, P, M) and what was
actually passed. Nothing here imports torch at module import time.
"""

from __future__ import annotations

import functools
import numbers
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_choice",
    "check_finite",
    "check_float_array",
    "check_float_pair",
    "check_int",
    "check_layout",
    "check_number",
    "check_pose_keypoints",
    "check_size",
    "host",
    "is_tensor",
    "shape_str",
    "to_numpy",
    "to_torch",
    "work_dtype",
]


def is_tensor(x: Any) -> bool:
    """Return True if ``x`` is a :class:`torch.Tensor` (without importing torch)."""
    torch = _torch_if_loaded()
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_if_loaded() -> Any:
    return sys.modules.get("torch")


def shape_str(shape: Iterable[int]) -> str:
    """Format a shape as ``(2, 17, 64, 64)``."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_layout(x: Any, name: str, layouts: Sequence[str]) -> str:
    """Check the rank of ``x`` against one or more layouts; return the one that matched.

    Parameters
    ----------
    x : ndarray or Tensor
        The array to check.
    name : str
        Argument name used in the error message.
    layouts : sequence of str
        Accepted layouts, one letter per dimension, e.g. ``["BKHW", "BKDHW"]``.

    Returns
    -------
    str
        The layout whose length equals ``x.ndim``.

    Raises
    ------
    ValueError
        If no layout has ``x.ndim`` dimensions.
    """
    for layout in layouts:
        if x.ndim == len(layout):
            return layout
    wanted = " or ".join("(" + ", ".join(layout) + ")" for layout in layouts)
    raise ValueError(f"{name} must have shape {wanted}, got shape {shape_str(x.shape)}")


def check_float_array(
    x: Any, name: str, *, allow_numpy: bool = True, allow_torch: bool = True
) -> None:
    """Check that ``x`` is a floating-point numpy array and/or torch tensor.

    Raises
    ------
    TypeError
        If ``x`` is of another kind or has an integer, boolean or complex dtype.
    """
    kinds = []
    if allow_numpy:
        kinds.append("numpy.ndarray")
    if allow_torch:
        kinds.append("torch.Tensor")
    if allow_torch and is_tensor(x):
        if not x.is_floating_point():
            raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
        return
    if allow_numpy and isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
        return
    raise TypeError(f"{name} must be a {' or '.join(kinds)}, got {type(x).__name__}")


def check_float_pair(a: Any, name_a: str, b: Any, name_b: str) -> None:
    """Check two float arrays given together: each a float ndarray or Tensor, both one kind.

    Raises
    ------
    TypeError
        If either is not a float ndarray or Tensor, or one is numpy and the other torch.
    """
    check_float_array(a, name_a)
    check_float_array(b, name_b)
    if is_tensor(a) != is_tensor(b):
        raise TypeError(
            f"{name_a} and {name_b} must both be numpy arrays or both torch tensors, got "
            f"{type(a).__name__} and {type(b).__name__}"
        )


def check_finite(x: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` (ndarray or Tensor) holds NaN or infinity."""
    if is_tensor(x):
        torch = _torch_if_loaded()
        if x.numel() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
        return
    arr = np.asarray(x)
    if arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of the string ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Check a real, finite scalar against optional bounds and return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check an integer scalar (``bool`` rejected, numpy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_pose_keypoints(kp: np.ndarray, label: str) -> np.ndarray:
    """Check decoded keypoints ``(P, K, 3)`` = x, y, score; return them as float64.

    Missing joints may have NaN coordinates but must have score 0.

    Raises
    ------
    TypeError
        If the dtype is not floating.
    ValueError
        If the shape is not (P, K, 3), a value is infinite or a score is NaN.
    """
    if kp.dtype.kind != "f":
        raise TypeError(f"{label} must have a floating-point dtype, got {kp.dtype}")
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(
            f"{label} must have shape (P, K, 3) holding x, y, score, "
            f"got shape {shape_str(kp.shape)}"
        )
    if np.isinf(kp).any():
        raise ValueError(f"{label} contains infinite values")
    if np.isnan(kp[..., 2]).any():
        raise ValueError(f"{label} has NaN scores (missing joints must have score 0)")
    return kp.astype(np.float64, copy=False)


def check_finite_fast(x: Any, name: str) -> None:
    """Raise ValueError on NaN or infinity, cheaply, without a temporary array.

    The largest and smallest values propagate NaN and show +inf and -inf: two
    reductions that vectorise (``aminmax``, one pass, for tensors). Only when one
    of them is not finite are the bad values counted for the message.
    """
    if is_tensor(x):
        import torch

        if x.numel() == 0:
            return
        lo, hi = torch.aminmax(x.detach())
        if bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)):
            return
    else:
        if x.size == 0:
            return
        with np.errstate(invalid="ignore"):
            if np.isfinite(x.max()) and np.isfinite(x.min()):
                return
    check_finite(x, name)


def work_dtype(*dtypes: Any) -> np.dtype:
    """float64 if any input is float64, else float32 (float16 and bfloat16 widen losslessly)."""
    for dt in dtypes:
        if _is_float64(dt):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


@functools.cache
def _is_float64(dtype: Any) -> bool:
    return str(dtype) in ("float64", "torch.float64")  # a numpy or a torch dtype


def to_numpy(x: Any, dtype: np.dtype) -> np.ndarray:
    if is_tensor(x):
        import torch

        t = x.detach()
        t = t.to(torch.float64 if dtype == np.float64 else torch.float32)
        return np.ascontiguousarray(t.cpu().numpy())
    arr = np.ascontiguousarray(x, dtype=dtype)
    if not arr.flags.writeable:  # one compiled variant: kernels take writeable arrays only
        arr = arr.copy()
    return arr


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """Check a map size ``(H, W)`` of positive integers; return it as a tuple of int."""
    if isinstance(size, str) or not isinstance(size, Sequence) or len(size) != 2:
        raise TypeError(f"{name} must be a pair (H, W) of positive integers, got {size!r}")
    h = check_int(size[0], f"{name}[0] (H)", low=1)
    w = check_int(size[1], f"{name}[1] (W)", low=1)
    return h, w


def to_torch(x: Any) -> Any:
    """Return a float tensor sharing ``x``'s memory (a copy if ``x`` is read-only or strided)."""
    if is_tensor(x):
        return x
    import torch

    if x.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"numpy maps must be float16, float32 or float64, got {x.dtype}")
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:
        x = x.copy()
    return torch.from_numpy(x)


def host(x: Any, dtype: Any = None) -> Any:
    """Return a tensor as a numpy array on the host (detached), cast to ``dtype`` if given.

    Anything else is returned as it is, or through ``np.asarray(x, dtype)`` when a
    ``dtype`` is given; callers check the kind of what comes back.
    """
    if is_tensor(x):
        arr = x.detach().cpu().numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)
    return x if dtype is None else np.asarray(x, dtype)


def warn_off_map(n_labelled: int, n_outside: int, size: tuple[int, int], name: str) -> None:
    """Warn (``UserWarning``) when most labelled joints lie outside an ``H x W`` map.

    Keypoints in image pixels given where map pixels are expected put most
    joints off the map: the targets come out almost empty and the loss
    silently small. ``stacklevel`` points at the public function's caller.
    """
    if n_labelled > 0 and 2 * n_outside > n_labelled:
        import warnings

        h, w = size
        warnings.warn(
            f"{n_outside} of the {n_labelled} labelled joints of {name} lie outside the "
            f"{h}x{w} map: {name} must be in map pixels (those of the heatmaps and tags), "
            "not image pixels; convert them with "
            "ae.scale_keypoints(keypoints, image_size, map_size)",
            UserWarning,
            stacklevel=3,
        )
