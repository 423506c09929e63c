"""Argument checks for the public ops: every message names the argument and the value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

Pair = tuple[int, int]
INT64_MAX = 2**63 - 1


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


def real(value: Any, name: str) -> float:
    """A real number (not a bool) as a Python float; ValueError naming `name` for one too large
    for a float (``10**400``, a huge Fraction), rather than the OverflowError of ``float()``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_short(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}={_short(value)} is too large for a float") from None


def positive_finite(value: Any, name: str) -> float:
    v = real(value, name)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {_short(value)}")
    return v


def _short(value: Any, limit: int = 60) -> str:
    """repr() cut to `limit` characters: a 400-digit int should not flood the message."""
    try:
        text = repr(value)
    except ValueError:  # ints past sys.get_int_max_str_digits() refuse repr(), also inside a tuple
        if isinstance(value, numbers.Integral):
            text = f"<int of about {int(value).bit_length() * 0.30103:.0f} digits>"
        else:
            text = f"<{type(value).__name__} holding a number too long to print>"
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-12:]} ({len(text)} characters)"


def zero_point(value: Any, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int in [-128, 127], got {_short(value)}")
    if not -128 <= int(value) <= 127:
        raise ValueError(f"{name} must be in [-128, 127], got {_short(value)}")
    return int(value)


def pair(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> Pair:
    """int or (h, w) of ints, each >= minimum (and <= maximum when given)."""
    items: Sequence[Any]
    if _is_int(value):
        items = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        items = value
    else:
        raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {_short(value)}")
    if any(int(v) < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum}, got {_short(value)}")
    maximum = INT64_MAX if maximum is None else maximum
    if any(int(v) > maximum for v in items):
        raise ValueError(f"{name} must be <= {maximum}, got {_short(value)}")
    return int(items[0]), int(items[1])


def per_channel(value: Any, name: str, count: int, *, positive: bool) -> np.ndarray:
    arr = array(value, name, ndim=1, kinds="f", dtype_desc="a float array")
    if arr.shape[0] != count:
        raise ValueError(f"{name} must have shape ({count},) (one per output channel), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] is not finite: {arr[bad]!r}")
    with np.errstate(over="ignore", under="ignore"):
        wide = arr.astype(np.float64)  # a longdouble entry may not fit
    if not np.all(np.isfinite(wide)):
        bad = int(np.flatnonzero(~np.isfinite(wide))[0])
        raise ValueError(f"{name}[{bad}]={arr[bad]!r} is too large for a float")
    if positive and not np.all(arr > 0):
        bad = int(np.flatnonzero(~(arr > 0))[0])
        raise ValueError(f"{name}[{bad}] must be > 0, got {arr[bad]!r}")
    return arr


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {_short(value)}")
    return value


def positive_int(value: Any, name: str) -> int:
    """An int in [1, INT64_MAX]: nothing a count reaches (numpy shapes, Vulkan sizes) holds more."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {_short(value)}")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {_short(value)}")
    if int(value) > INT64_MAX:
        raise ValueError(f"{name} must be <= {INT64_MAX}, got {_short(value)}")
    return int(value)


def storable(value: Any, name: str, dtype: Any, where: str, *, positive: bool) -> None:
    """ValueError if casting ``value`` (scalar or 1-D) to the shader's ``dtype`` makes an entry non-finite,
    or (``positive``) turns a positive one into 0."""
    given = np.asarray(value).reshape(-1)
    with np.errstate(over="ignore", under="ignore"):
        cast = given.astype(np.float64).astype(dtype)
    bad = ~np.isfinite(cast)
    if positive:
        bad |= cast <= 0
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        label = name if np.ndim(value) == 0 else f"{name}[{i}]"
        shown = given[i].item() if given.dtype.itemsize <= 8 else given[i]  # a longdouble keeps its value
        raise ValueError(
            f"{label}={shown!r} is out of range for {where} ({np.dtype(dtype)}): it would become "
            f"{float(cast[i])!r}"
        )


def float32_range(value: Any, name: str, low: float, high: float, why: str) -> None:
    """ValueError unless every entry of ``value`` (scalar or 1-D), cast to float32, lies in [low, high];
    ``why`` says what the range protects (e.g. which device operation needs it)."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    with np.errstate(over="ignore", under="ignore"):
        cast = np.abs(arr.astype(np.float32).astype(np.float64))
    bad = ~((cast >= low) & (cast <= high))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        label = name if np.ndim(value) == 0 else f"{name}[{i}]"
        raise ValueError(f"{label}={float(arr[i])!r} is outside [{low:.6g}, {high:.6g}] as a float32: {why}")


def zero_points(value: Any, name: str, count: int) -> np.ndarray:
    """A 1-D integer array of `count` zero points in [-128, 127], as int32."""
    arr = array(value, name, ndim=1, kinds="iu", dtype_desc="an integer array")
    if arr.shape[0] != count:
        raise ValueError(f"{name} must have shape ({count},) (one per channel), got {arr.shape}")
    bad = np.flatnonzero((arr < -128) | (arr > 127))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] must be in [-128, 127], got {arr[i]!r}")
    return arr.astype(np.int32)


def flag(value: Any, name: str, *, allow_none: bool = False) -> bool | None:
    """A bool argument (or None where allowed); TypeError for anything else, 0 and 1 included."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    return bool(value)


def int32(value: Any, name: str) -> int:
    """An int that fits a signed 32-bit shader value (a push or spec constant)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {_short(value)}")
    if not -(2**31) <= int(value) < 2**31:
        raise ValueError(f"{name} must fit in int32, got {_short(value)}")
    return int(value)
