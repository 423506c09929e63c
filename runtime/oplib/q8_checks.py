"""What the checks of the int8 families share: test tensors by value mode, and comparisons with the oracle.

The requantized outputs are compared with :func:`requant_mismatch`: exact, except where the oracle's
float64 value ``y / out_scale`` lies so close to a rounding tie (a half-integer) that the device's
float32 epilogue may round it the other way; there +-1 is allowed. How close is "so close" scales
with the size of the terms the float32 chain rounds (`magnitude`, from the oracle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# relative error bound of the float32 epilogue: float(acc), x_scale and out_scale rounded to float32,
# two products, the bias add and the division (up to 2.5 ulp on Vulkan) are about 8 ulp of 2**-24;
# 2**-18 leaves 8x headroom and is still far below any real bug (those move whole units)
TIE_BAND = 2.0**-18


def int8_values(rng: np.random.Generator, shape: tuple[int, ...], mode: str) -> np.ndarray:
    """int8 test values: "random", "min" (all -128), "max" (all 127), "extremes" (-128, 127, -127, 0)
    or "small" (-2 .. 2, so that sums of products stay inside int8 for exact accumulator checks)."""
    if mode == "min":
        return np.full(shape, -128, np.int8)
    if mode == "max":
        return np.full(shape, 127, np.int8)
    if mode == "extremes":
        return rng.choice(np.array([-128, 127, -127, 0], np.int8), size=shape)
    if mode == "small":
        return rng.integers(-2, 3, size=shape, dtype=np.int8)
    if mode != "random":
        raise ValueError(f"value mode must be random, min, max, extremes or small, got {mode!r}")
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def scales_and_bias(
    rng: np.random.Generator, case: Mapping[str, Any], count: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel w_scales (log-uniform over case["w_scale_range"]) and bias (normal, times
    case["bias_scale"]; None where case["bias"] is false), drawn from `rng` in that order, as float16
    where case["scale_dtype"] says so."""
    lo, hi = case.get("w_scale_range", (0.001, 0.02))
    w_scales = np.exp(rng.uniform(np.log(lo), np.log(hi), count)).astype(np.float32)
    bias = None
    if case.get("bias", True):
        bias = (rng.standard_normal(count) * case.get("bias_scale", 1.0)).astype(np.float32)
    if case.get("scale_dtype", "float32") == "float16":
        return w_scales.astype(np.float16), None if bias is None else bias.astype(np.float16)
    return w_scales, bias


def first_mismatch(
    got: np.ndarray, want: np.ndarray, tol: int | np.ndarray, mask: np.ndarray | None = None
) -> str | None:
    """None when |got - want| <= tol everywhere (where `mask`, if given); else what and where."""
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    if mask is not None:
        diff = np.where(mask, diff, 0)
    bad = np.argwhere(diff > tol)
    if bad.size == 0:
        return None
    idx = tuple(int(i) for i in bad[0])
    limit = int(np.broadcast_to(tol, diff.shape)[idx])
    return (
        f"{len(bad)} of {diff.size} elements differ by more than allowed; first at index {idx}: "
        f"got {int(got[idx])}, expected {int(want[idx])} (allowed {limit}; max |diff| {int(diff.max())})"
    )


def near_tie(scaled: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Where float32 rounding may move ``scaled`` (= y / out_scale, float64) across a rounding tie."""
    scaled = np.asarray(scaled, np.float64)
    distance = np.abs(scaled - np.floor(scaled) - 0.5)
    return distance <= TIE_BAND * np.asarray(magnitude, np.float64) + 1e-30


def requant_mismatch(got: np.ndarray, want: np.ndarray, scaled: np.ndarray, magnitude: np.ndarray) -> str | None:
    """Requantized output vs the oracle: exact, +-1 only next to a rounding tie (see the module doc)."""
    tol = near_tie(scaled, magnitude).astype(np.int64)
    problem = first_mismatch(got, want, tol)
    if problem is None:
        return None
    return f"{problem}; +-1 is allowed only within {TIE_BAND:.3g} * magnitude of a rounding tie ({int(tol.sum())} such)"
