"""Argument checks for the public ops: every message names the argument and the value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

Pair = tuple[int, int]


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def array(value: Any, name: str, *, ndim: int, kinds: str, dtype_desc: str) -> np.ndarray:
    """An ndarray of one of the numpy kinds (e.g. 'i', 'f') and the given rank."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {dtype_desc}, got {type(value).__name__}")
    if value.dtype.kind not in kinds:
        raise TypeError(f"{name} must be {dtype_desc}, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if 0 in value.shape:
        raise ValueError(f"{name} has a zero-size dimension: shape {value.shape}")
    return value


def int8_array(value: Any, name: str, ndim: int) -> np.ndarray:
    arr = array(value, name, ndim=ndim, kinds="iu", dtype_desc="int8")
    if arr.dtype != np.int8:
        raise TypeError(f"{name} must have dtype int8, got {arr.dtype}")
    return arr


def positive_finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def zero_point(value: Any, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int in [-128, 127], got {value!r}")
    if not -128 <= int(value) <= 127:
        raise ValueError(f"{name} must be in [-128, 127], got {value!r}")
    return int(value)


def pair(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> Pair:
    """int or (h, w) of ints, each >= minimum (and <= maximum when given)."""
    items: Sequence[Any]
    if _is_int(value):
        items = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        items = value
    else:
        raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    if any(int(v) < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and any(int(v) > maximum for v in items):
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return int(items[0]), int(items[1])


def per_channel(value: Any, name: str, count: int, *, positive: bool) -> np.ndarray:
    arr = array(value, name, ndim=1, kinds="f", dtype_desc="a float array")
    if arr.shape[0] != count:
        raise ValueError(f"{name} must have shape ({count},) (one per output channel), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] is not finite: {arr[bad]!r}")
    if positive and not np.all(arr > 0):
        bad = int(np.flatnonzero(~(arr > 0))[0])
        raise ValueError(f"{name}[{bad}] must be > 0, got {arr[bad]!r}")
    return arr


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def positive_int(value: Any, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def storable(value: Any, name: str, dtype: Any, where: str, *, positive: bool) -> None:
    """ValueError if casting ``value`` (scalar or 1-D) to the shader's ``dtype`` makes an entry non-finite,
    or (``positive``) turns a positive one into 0."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    with np.errstate(over="ignore", under="ignore"):
        cast = arr.astype(dtype)
    bad = ~np.isfinite(cast)
    if positive:
        bad |= cast <= 0
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        label = name if np.ndim(value) == 0 else f"{name}[{i}]"
        raise ValueError(
            f"{label}={float(arr[i])!r} is out of range for {where} ({np.dtype(dtype)}): it would become "
            f"{float(cast[i])!r}"
        )
