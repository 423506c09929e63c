"""What the checks of the int8 families share: test tensors by value mode, and comparisons with the oracle.

Requantized outputs are compared with :func:`requant_mismatch`: exact, except where the oracle's
float64 value ``r = y / out_scale`` lies so close to a rounding tie (a half-integer) that the
device's float32 epilogue may round it the other way; there +-1 is allowed.

The bound, from templates/include/epilogue.glsl.j2 (u = 2^-24, the unit roundoff of float32:
a correctly rounded operation is off by at most u times its exact result):

    y = float(centered) * (x_scale * float(w_scale[oc])) + float(bias[oc]);  relu;
    q = clamp(int(clamp(roundEven(y / out_scale), -256, 256)) + out_zp, -128, 127)

* ``centered`` is an exact int; ``float(centered)``: 1 rounding (exact below 2^24).
* ``x_scale`` and ``out_scale`` reach the shader as float32 push constants, while the oracle uses
  the host's float64 values: 1 rounding each. ``w_scale`` and ``bias`` are already float32 or
  float16 on the host and the oracle widens those same values; float16 -> float32 is exact, so
  float16 scales add nothing.
* ``x_scale * w_scale``: 1; ``float(centered) * that``: 1. With T = |centered * x_scale *
  w_scale| the product is within (1+u)^4 - 1 ~ 4u T of its exact value.
* ``+ bias``: 1 rounding of the sum, at most u (T + |bias|). (An FMA the compiler may contract
  this into rounds once instead of twice: never worse.)
* relu is 1-Lipschitz: it adds nothing.
* ``/ out_scale``: Vulkan allows 2.5 ulp for a division, 2.5 * 2^-23 = 5u relative, on top of the
  1u of out_scale's own float32 rounding.

So |r_device - r| <= (5u T + u |bias| + 6u (T + |bias|)) / out_scale <= 11u M, with the
*magnitude* M = (T + |bias|) / out_scale the oracles return beside r. Second-order terms are
below u^2 M; :data:`TIE_BAND` = 12u covers them. roundEven, the clamps and + out_zp are exact,
so only an r within 12u M of a half-integer can come out one off. A truncating, flooring or
ceiling requantization moves about half of all outputs by a whole unit and fails; so does any
error in the accumulators larger than the band. Values of every case stay far above float32's
normal range (x_scale >= 1e-4, w_scale >= 1e-5), so denormal flushing plays no part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runtime.oplib import tolerance_use

U32 = 2.0**-24
# roundings of the epilogue, in units of U32 of the magnitude (module docstring): 11, +1 for
# the second-order terms
EPILOGUE_ROUNDINGS = 12
TIE_BAND = EPILOGUE_ROUNDINGS * U32
# the name the test summary lists requant_mismatch's counts under
TIE_RULE = "int8 requantization: +-1 within 12u*M of a tie"


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


def calibrated_quant(case: Mapping[str, Any], scaled: np.ndarray, x_scale: float, activation: str) -> dict[str, Any]:
    """The quantization keywords of a case (x_scale, x_zp, out_scale, out_zp, activation), out_scale
    calibrated: `out_scale_factor` (default 1) times the scale that maps max |y| to 127, where `scaled`
    is the oracle's y for out_scale 1 (a factor below 1 makes cases that saturate)."""
    peak = float(np.max(np.abs(scaled))) or 1.0
    return {"x_scale": x_scale, "x_zp": case["x_zp"], "out_scale": peak / 127.0 * case.get("out_scale_factor", 1.0),
            "out_zp": case["out_zp"], "activation": activation}


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


def near_tie(scaled: np.ndarray, magnitude: np.ndarray, out_zp: int | None = None) -> np.ndarray:
    """Where float32 rounding may move ``scaled`` (= y / out_scale, float64) across a rounding tie;
    with `out_zp`, only where the two roundings also differ after + out_zp and the int8 clamp."""
    scaled = np.asarray(scaled, np.float64)
    below = np.floor(scaled)
    near = np.abs(scaled - below - 0.5) <= TIE_BAND * np.asarray(magnitude, np.float64) + 1e-30
    if out_zp is not None:
        near &= (below + out_zp >= -128) & (below + out_zp <= 126)
    return near


def relu_magnitude(pre: np.ndarray, magnitude: np.ndarray, activation: str) -> np.ndarray:
    """The magnitude after the activation: with relu, an output whose exact y lies below 0 by more
    than the float32 error of y (6u M, module docstring; TIE_BAND is twice that) is exactly 0 on the
    device too, whatever its terms' size: no rounding error reaches it. `pre` is y / out_scale
    before the activation."""
    if activation != "relu":
        return magnitude
    return np.where(np.asarray(pre) < -TIE_BAND * np.asarray(magnitude), 0.0, magnitude)


def requant_problem(
    got: np.ndarray, reference: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]], quant: Mapping[str, Any]
) -> str | None:
    """:func:`requant_mismatch` of an op's output against its oracle `reference(**quant)` (returning want,
    scaled, magnitude): with relu, no tie allowance where relu makes the output exactly 0
    (:func:`relu_magnitude`), and none where the int8 clamp after + out_zp hides the tie."""
    want, scaled, magnitude = reference(**quant)
    if quant["activation"] == "relu":
        _, pre, _ = reference(**dict(quant, activation="none"))
        magnitude = relu_magnitude(pre, magnitude, "relu")
    return requant_mismatch(got, want, scaled, magnitude, quant["out_zp"])


def requant_mismatch(
    got: np.ndarray, want: np.ndarray, scaled: np.ndarray, magnitude: np.ndarray, out_zp: int | None = None
) -> str | None:
    """Requantized output vs the oracle: exact, +-1 only next to a rounding tie (see the module doc;
    `out_zp` as in :func:`near_tie`).

    A passing comparison records in :mod:`runtime.oplib.tolerance_use` how many elements were next
    to a tie and how many of those came out one off."""
    near = np.broadcast_to(near_tie(scaled, magnitude, out_zp), np.shape(want))
    tol = near.astype(np.int64)
    problem = first_mismatch(got, want, tol)
    if problem is None:  # what passing comparisons needed (a failure is reported on its own)
        diff = np.abs(np.asarray(got, np.int64) - np.asarray(want, np.int64))
        tolerance_use.record(TIE_RULE, compared=diff.size, allowed=int(near.sum()),
                             used=int(np.count_nonzero(diff)), worst=float(diff.max(initial=0)))
        return None
    return f"{problem}; +-1 is allowed only within {TIE_BAND:.3g} * magnitude of a rounding tie ({int(tol.sum())} such)"


def accumulator_problem(
    run: Callable[..., Any], acc: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
    weight: np.ndarray, x_zp: int, rng: np.random.Generator, scale_dtype: Any,
) -> str | None:
    """Exact accumulators through identity requantization: an op `run(x, weight, w_scales, bias, **quant)`
    (returning a result with `.output`) on :func:`small_operands` of x and weight, with unit scales, no
    bias and out_zp 0, against the oracle's accumulators `acc(xs, ws)` clipped to int8; None when equal,
    else what and where."""
    xs, ws = small_operands(x, weight, x_zp, rng)
    ones = np.ones(ws.shape[0], scale_dtype)
    got = run(xs, ws, ones, None, x_scale=1.0, x_zp=x_zp, out_scale=1.0, out_zp=0).output
    return first_mismatch(got, np.clip(acc(xs, ws), -128, 127), 0)


def small_operands(
    x: np.ndarray, weight: np.ndarray, x_zp: int, rng: np.random.Generator, max_terms: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """x within x_zp +- 3 and weights in {-1, 0, 1} with at most `max_terms` non-zero weights per
    output channel (dim 0), at positions drawn from `rng`: every accumulator of centered values
    stays within +-126, so identity requantization shows all of its bits."""
    xs = np.clip(x_zp + np.asarray(x, np.int64) % 7 - 3, -128, 127).astype(np.int8)
    ws = (np.asarray(weight, np.int64) % 3 - 1).reshape(weight.shape[0], -1)
    for row in ws:
        nonzero = np.flatnonzero(row)
        if nonzero.size > max_terms:
            row[rng.choice(nonzero, nonzero.size - max_terms, replace=False)] = 0
    return xs, ws.reshape(weight.shape).astype(np.int8)
