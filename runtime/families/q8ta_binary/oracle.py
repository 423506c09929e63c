"""NumPy oracle of the q8ta_binary family: int8 add / mul with NumPy broadcasting.

It imports NumPy only. a and b are int8 NCHW arrays that broadcast by NumPy rules; the result has
the broadcast shape. The real-number definition (scales as float32 values):

    add: y = a_scale * (a - a_zp) + b_scale * (b - b_zp)
    mul: y = a_scale * (a - a_zp) * b_scale * (b - b_zp)
    relu if asked; q = clip(roundHalfEven(y / out_scale) + out_zp, -128, 127)

What the shaders compute (:func:`binary_q8`), in float32 with no division on the device: the host
folds the scales into multipliers, each computed in float64 from the float32 scales and rounded
once to float32 (:func:`multipliers`), and the device does

    add: v = float32(a - a_zp) * A + float32(b - b_zp) * B     A = a_scale / out_scale, B = b_scale / out_scale
    mul: v = float32((a - a_zp) * (b - b_zp)) * M              M = a_scale * b_scale / out_scale

each operation rounded once (no fused multiply-add), relu as max(v, 0), then q = clip(roundHalfEven(v)
+ out_zp). (a - a_zp) and the integer product (|.| <= 65025) are exact in float32. A multiplier
below 2^-126 is taken as 0: |v| < 65025 * 2^-126 then rounds to 0 whatever it is (a device could
flush such a subnormal anyway). :func:`binary_q8` rounds to nearest even, as lavapipe does bit for
bit; :func:`binary_window` bounds what any Vulkan device may return (see the checks).
"""

from __future__ import annotations

import numpy as np

OPS = ("add", "mul")
ACTIVATIONS = ("none", "relu")
TINY32 = float(np.finfo(np.float32).tiny)
MAX32 = float(np.finfo(np.float32).max)
# relative half-width, against the magnitude of the terms, of the window a device's float32 may
# land in around the real-number value: see checks.check_binary
WINDOW = 2.0**-21


def _f32(value: float) -> float:
    """A scale as the float32 the device sees."""
    return float(np.float32(value))


def multipliers(op: str, a_scale: float, b_scale: float, out_scale: float) -> tuple[float, float, float]:
    """(A, B, M) as float32 values: A, B for add (M = 0), M for mul (A = B = 0)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    sa, sb, so = _f32(a_scale), _f32(b_scale), _f32(out_scale)
    exact = (sa / so, sb / so, 0.0) if op == "add" else (0.0, 0.0, sa * sb / so)

    def rounded(m: float) -> float:
        r = _f32(m) if m <= MAX32 else float("inf")
        return 0.0 if r < TINY32 else r

    a, b, m = (rounded(e) for e in exact)
    return a, b, m


def _centered(a: np.ndarray, b: np.ndarray, a_zp: int, b_zp: int) -> tuple[np.ndarray, np.ndarray]:
    for name, t in (("a", a), ("b", b)):
        if t.ndim != 4 or t.dtype != np.int8:
            raise ValueError(f"{name} must be a 4-D int8 array, got {t.dtype} {t.shape}")
    return a.astype(np.int32) - int(a_zp), b.astype(np.int32) - int(b_zp)


def binary_q8(a: np.ndarray, b: np.ndarray, op: str, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int,
              out_scale: float, out_zp: int, activation: str = "none") -> np.ndarray:
    """int8 result of the float32 definition above, every operation rounded to nearest even."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    ia, ib = _centered(np.asarray(a), np.asarray(b), a_zp, b_zp)
    A, B, M = (np.float32(m) for m in multipliers(op, a_scale, b_scale, out_scale))
    with np.errstate(over="ignore"):
        if op == "add":
            v = ia.astype(np.float32) * A + ib.astype(np.float32) * B
        else:
            v = (ia * ib).astype(np.float32) * M
    if activation == "relu":
        v = np.maximum(v, np.float32(0))
    return np.clip(np.rint(v.astype(np.float64)) + out_zp, -128, 127).astype(np.int8)


def binary_real(a: np.ndarray, b: np.ndarray, op: str, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int,
                out_scale: float, activation: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """float64 ``y / out_scale`` of the real-number definition (before rounding and out_zp), and the
    magnitude of its terms (|a term| + |b term| for add, |y / out_scale| for mul)."""
    ia, ib = _centered(np.asarray(a), np.asarray(b), a_zp, b_zp)
    sa, sb, so = _f32(a_scale), _f32(b_scale), _f32(out_scale)
    if op == "add":
        ta, tb = ia * (sa / so), ib * (sb / so)
        v, size = ta + tb, np.abs(ta) + np.abs(tb)
    else:
        v = (ia * ib).astype(np.float64) * (sa * sb / so)
        size = np.abs(v)
    if activation == "relu":
        v = np.maximum(v, 0.0)
    return v, size


def binary_window(a: np.ndarray, b: np.ndarray, op: str, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int,
                  out_scale: float, out_zp: int, activation: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """The int8 range ``[lo, hi]`` a Vulkan device may return: every result of rounding a value within
    ``WINDOW * size + 2^-110`` of the real-number value (relu and rounding are monotone)."""
    v, size = binary_real(a, b, op, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp, out_scale=out_scale)
    eps = WINDOW * size + 2.0**-110
    ends = []
    for end in (v - eps, v + eps):
        if activation == "relu":
            end = np.maximum(end, 0.0)
        ends.append(np.clip(np.rint(end) + out_zp, -128, 127).astype(np.int8))
    return ends[0], ends[1]
