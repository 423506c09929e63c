"""NumPy oracle of the q8ta_quantize family: quantize / dequantize, and what a device may return instead.

It imports NumPy only. Tensors are logical NCHW; ``scale`` and ``zp`` are scalars or (C,) arrays
(per channel, axis 1). Scales are float32 values (the ops round a Python float to float32 first).

What the shaders compute (float32, one rounding per operation):

* quantize: ``x`` float32, or float16 widened to float32 (exactly: every float16 is a float32);
  ``v = x / scale`` (OpFDiv); ``q = clip(roundHalfEven(v) + zp, -128, 127)``. An infinite ``v``
  saturates; NaN gives an unspecified value.
* dequantize: ``y = float32(q - zp) * scale`` (``q - zp`` is an integer in [-255, 255], exact in
  float32, so the product is the one rounding), stored as float32 or float16 (a second rounding).

:func:`quantize` and :func:`dequantize` round to nearest even (IEEE, as NumPy's float32 does), which
is what lavapipe does, bit for bit. Vulkan allows more, and :func:`quantize_window` /
:func:`dequantize_neighbours` say how much (see the checks for the derivations).
"""

from __future__ import annotations

import numpy as np

TINY32 = float(np.finfo(np.float32).tiny)
# relative half-width of the window around the exact quotient where a device's x / scale may round
# to the other side of a .5 tie: 2^-21 >= 2.5 ulp (Vulkan's OpFDiv bound) + float64's error; see
# checks.check_quantize
DIV_WINDOW = 2.0**-21


def _channels(v: np.ndarray | float | int, c: int, dtype: type) -> np.ndarray:
    """A scalar or (C,) parameter as an array broadcasting over NCHW along C."""
    arr: np.ndarray = np.asarray(v, dtype=dtype)
    if arr.ndim == 0:
        return arr.reshape(1, 1, 1, 1)
    if arr.shape != (c,):
        raise ValueError(f"a per-channel parameter must have shape ({c},), got {arr.shape}")
    return arr.reshape(1, c, 1, 1)


def _check_x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype not in (np.float32, np.float16):
        raise ValueError(f"x must be a 4-D float32 or float16 array, got {x.dtype} {x.shape}")
    return x


def _saturate(r: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """clip(r + zp) as int8, for r already rounded (or infinite)."""
    return np.clip(r + zp, -128, 127).astype(np.int8)


def quantize(x: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int) -> np.ndarray:
    """int8 ``clip(rint(float32(x) / scale) + zp)``, the quotient rounded once to float32."""
    x = _check_x(x)
    c = x.shape[1]
    with np.errstate(over="ignore", divide="ignore"):
        v = x.astype(np.float32) / _channels(scale, c, np.float32)
    return _saturate(np.rint(v.astype(np.float64)), _channels(zp, c, np.int64))


def quantize_window(x: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """The int8 range ``[lo, hi]`` a Vulkan device may return for each element.

    From the exact quotient v (float64 of the float32 inputs): every result of rounding a value
    within ``DIV_WINDOW * |v|`` of v; and where x is subnormal in its own dtype (a device may flush
    it to zero), also the result for x = 0. Outside the tie windows lo == hi == quantize().
    """
    x = _check_x(x)
    c = x.shape[1]
    zps = _channels(zp, c, np.int64)
    v = x.astype(np.float64) / _channels(scale, c, np.float32).astype(np.float64)
    eps = DIV_WINDOW * np.abs(v)
    with np.errstate(invalid="ignore"):  # inf - inf where x / scale overflows float64 (never: scales >= 2^-126)
        lo = _saturate(np.rint(v - eps), zps)
        hi = _saturate(np.rint(v + eps), zps)
    subnormal = (x != 0) & (np.abs(x) < np.finfo(x.dtype).tiny)
    at_zero = np.broadcast_to(_saturate(np.zeros(1), zps), x.shape)
    lo = np.where(subnormal, np.minimum(lo, at_zero), lo)
    hi = np.where(subnormal, np.maximum(hi, at_zero), hi)
    return lo, hi


def _check_q(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q)
    if q.ndim != 4 or q.dtype != np.int8:
        raise ValueError(f"q must be a 4-D int8 array, got {q.dtype} {q.shape}")
    return q


def dequantize_exact(q: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int) -> np.ndarray:
    """float64 ``(q - zp) * scale``: exact (a 9-bit integer times a float32 fits in float64)."""
    q = _check_q(q)
    c = q.shape[1]
    return (q.astype(np.int64) - _channels(zp, c, np.int64)) * _channels(scale, c, np.float32).astype(np.float64)


def dequantize(q: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int, dtype: str = "float32") -> np.ndarray:
    """``float32(q - zp) * scale`` rounded to nearest float32, then to `dtype` (nearest even each time)."""
    q = _check_q(q)
    c = q.shape[1]
    centered = (q.astype(np.int32) - _channels(zp, c, np.int32)).astype(np.float32)
    with np.errstate(over="ignore"):
        return (centered * _channels(scale, c, np.float32)).astype(dtype)


def dequantize_neighbours(q: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int,
                          dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two `dtype` values bracketing the exact result (equal where it is representable), and a
    mask of results below `dtype`'s smallest normal (a device may flush those to zero)."""
    exact = dequantize_exact(q, scale, zp)
    dt = np.dtype(dtype)
    with np.errstate(over="ignore"):
        nearest = exact.astype(dt)
    back = nearest.astype(np.float64)
    inf = np.array(np.inf, dt)
    down = np.where(back > exact, np.nextafter(nearest, -inf), nearest)
    up = np.where(back < exact, np.nextafter(nearest, inf), nearest)
    return down, up, (exact != 0) & (np.abs(exact) < np.finfo(dt).tiny)
