"""Checks of the f_conv2d variants (roles float_im2col / float_gemm) against the family's oracle.

Levels (registered with the family, so the generic property tests, the check tool and
`runtime.tools.repro` treat it like any other family):

* float_im2col: im2col alone, bit-exact on the whole matrix (padded channel slots must be 0), the
  layout's padding slots filled with NaN / inf / huge values that would show in the output.
* float_gemm: the GEMM alone, (1) exact on integer-valued inputs small enough that every partial
  sum and the result are representable, (2) within tolerance on the case's values; the matrix's
  padded channel slots hold finite noise (times a zero weight: exactly 0).
* float_conv: the whole op with this variant forced, within tolerance, NaN-poisoned padding.

Tolerance, per output element, from the reference (float64, on the inputs already cast to dtype):

    |got - ref| <= E + eps_store (|ref| + E) + tiny_store,   E = gamma_d M + (2n + 2) tiny32

* n: the number of products of the output that are not exactly zero (reference_float, run on the
  0/1 indicators of x and w, counts them). Zero products (padding taps, padded channel slots,
  zero values) add exactly, whatever the order: they round nothing.
* M = sum_k |x_k| |w_k| + |bias|, the magnitude of the terms (reference_float computes it).
* The shader adds the n products and the bias in float32, in an order of its own (dot() of
  words, then a chain): whatever the order, each term passes through at most d roundings, with
  d = n + 1 (its product and at most n additions), or d = n for float16 data, whose products are
  exact in float32 (11 x 11 significand bits). Each rounding is at most u32 = 2^-24 relative
  (Vulkan: add, multiply, conversions correctly rounded; dot inherits them), so the sum is off by
  at most gamma_d M, gamma_d = d u32 / (1 - d u32) (Higham, Accuracy and Stability, 3.1).
* eps_store = eps(dtype) for float16: the one narrowing of the float32 result by the store.
  Vulkan lets a narrowing conversion pick either neighbour (not only the nearest), so a whole ulp
  of the stored value. float32 results are stored as computed: eps_store = 0.
* tiny terms: a device may flush subnormal float32 intermediates (2n + 1 operations; +1 spare)
  and subnormal float16 outputs (tiny_store = the smallest normal float16; 0 for float32) to zero
  (Vulkan leaves denormals implementation-defined).
ReLU is 1-Lipschitz, so the bound holds after it.

The bound used before was 2 (Kp + 1) u32 M + eps_out |ref| + (Kp + 3) tiny32 + tiny_out, looser
than this arithmetic needs in four places: a factor 2 on gamma (1 / (1 - d u32) is below 1.001
here); Kp, the padded reduction length, where only the n non-zero products round (often a
fraction of Kp: padded channels, padding taps, zero values); the float16 products' rounding
that does not happen; and eps_out |ref| for float32 outputs, which are not narrowed. The test
summary shows the worst |got - ref| / tolerance of a run (tolerance_use).

Value modes ("normal", "large", "small", "mixed") draw |v| = 2^u, u uniform in a per-dtype range
with a random sign; a zero fraction sets exact zeros. Cases whose magnitude would overflow the
dtype are scaled down by powers of two (exact) before the bias is drawn, and values left
subnormal are flushed to 0, so inputs are always normal numbers or exact zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib import tolerance_use
from runtime.oplib.cells import FLOAT_CLASSES, FLOAT_GEMM_CLASSES, by_axis, classes_of, conv_cells

from . import oracle as reference_float
from .op import run_conv2d_float, run_gemm_float, run_im2col_float

ROLES = ("float_im2col", "float_gemm")

# log2 |v| per value mode and dtype: float16 "large" products overflow it unless scaled down,
# "small" products land near its subnormal range; float32 ranges stay inside float32 products.
EXPONENTS: dict[str, dict[str, tuple[float, float]]] = {
    "float32": {"normal": (-2.0, 2.0), "large": (24.0, 48.0), "small": (-48.0, -24.0)},
    "float16": {"normal": (-2.0, 2.0), "large": (5.0, 10.0), "small": (-12.0, -7.0)},
}
U32 = 2.0**-24
TINY32 = float(np.finfo(np.float32).tiny)
# a case's largest magnitude stays below max(dtype) / HEADROOM
HEADROOM = 16.0


@dataclass
class FloatInputs:
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    conv: dict[str, Any]
    activation: str


def _values(rng: np.random.Generator, shape: tuple[int, ...], mode: str, zeros: float, dtype: str) -> np.ndarray:
    table = EXPONENTS[dtype]
    lo, hi = (table["small"][0], table["large"][1]) if mode == "mixed" else table[mode]
    v = rng.choice([-1.0, 1.0], size=shape) * np.exp2(rng.uniform(lo, hi, size=shape))
    v[rng.random(shape) < zeros] = 0.0
    return v.astype(dtype)


def _flush_subnormal(v: np.ndarray) -> np.ndarray:
    return np.where(np.abs(v) < np.finfo(v.dtype).tiny, np.zeros((), v.dtype), v)


def materialize(case: dict[str, Any]) -> FloatInputs:
    """Arrays of a float case (keys: conv shape as runtime.oplib.strategies.conv_shapes, dtype, x_values,
    w_values, x_zeros, w_zeros, bias, activation, seed), already cast to the case's dtype."""
    dtype = case["dtype"]
    rng = np.random.default_rng(case["seed"])
    G = case["groups"]
    conv: dict[str, Any] = {k: tuple(case[k]) if isinstance(case[k], list) else case[k]
                            for k in ("stride", "padding", "dilation", "groups")}
    x = _values(rng, (case["N"], case["C_in"], case["H"], case["W"]), case["x_values"], case["x_zeros"], dtype)
    w_shape = (case["C_out"], case["C_in"] // G, case["KH"], case["KW"])
    w = _values(rng, w_shape, case["w_values"], case["w_zeros"], dtype)
    _, magnitude = reference_float.conv2d_float_reference(x, w, None, **conv)
    limit = float(np.finfo(dtype).max) / HEADROOM
    peak = float(magnitude.max())
    if peak > limit:  # scale x and w down by powers of two, which is exact unless they go subnormal
        e = math.ceil(math.log2(peak / limit))
        x = _flush_subnormal((x.astype(np.float64) * 2.0 ** -(e // 2)).astype(dtype))
        w = _flush_subnormal((w.astype(np.float64) * 2.0 ** -(e - e // 2)).astype(dtype))
        _, magnitude = reference_float.conv2d_float_reference(x, w, None, **conv)
    bias = None
    if case.get("bias", True):
        positive = magnitude[magnitude > 0]
        typical = float(np.median(positive)) if positive.size else 1.0
        b = rng.choice([-1.0, 1.0], size=case["C_out"]) * typical * np.exp2(rng.uniform(-2, 2, case["C_out"]))
        bias = _flush_subnormal(np.clip(b, -limit, limit).astype(dtype))
    return FloatInputs(x, w, bias, conv, case.get("activation", "none"))


TOLERANCE_RULE = "float conv: gamma_d * M (+ the float16 store)"


def tolerance(magnitude: np.ndarray, value: np.ndarray, K: int | np.ndarray, dtype: str) -> np.ndarray:
    """Per-element bound on |got - ref| (see the module docstring); `K` bounds the number of
    non-zero products of each output (an int, or an array of counts)."""
    n = np.asarray(K, np.float64)
    depth = n + (0 if dtype == "float16" else 1)  # float16 products are exact in float32
    gamma = depth * U32 / (1 - depth * U32)
    err = gamma * magnitude + (2 * n + 2) * TINY32
    if dtype == "float32":
        return err
    out = np.finfo(dtype)
    return err + float(out.eps) * (np.abs(value) + err) + float(out.tiny)


def nonzero_products(x: np.ndarray, weight: np.ndarray, conv: dict[str, Any]) -> np.ndarray:
    """Per output element, how many of its products x * w are not exactly zero (NCHW)."""
    _, count = reference_float.conv2d_float_reference((x != 0).astype(np.float64),
                                                      (weight != 0).astype(np.float64), None, **conv)
    return count


def _mismatch(got: np.ndarray, want: np.ndarray, tol: np.ndarray | float) -> str | None:
    diff = np.abs(got.astype(np.float64) - want)
    bad = np.argwhere(~(diff <= tol))  # NaN in got counts as bad
    if bad.size == 0:
        if np.any(np.asarray(tol) > 0):  # what a passing comparison needed of the bound
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(np.asarray(tol) > 0, diff / tol, 0.0)
            tolerance_use.record(TOLERANCE_RULE, compared=diff.size, allowed=diff.size,
                                 used=int(np.count_nonzero(diff > 0)), worst=float(ratio.max(initial=0.0)))
        return None
    idx = tuple(int(i) for i in bad[0])
    t = np.broadcast_to(tol, diff.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = float(np.nanmax(np.where(t > 0, diff / t, np.inf)))
    return (f"{len(bad)} of {diff.size} elements differ by more than the tolerance; first at index {idx}: "
            f"got {float(got[idx])!r}, expected {float(want[idx])!r}, tolerance {float(t[idx]):.3g} "
            f"(worst |diff| / tolerance {worst:.3g})")


def _bits_mismatch(got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype} {got.shape}, expected {want.dtype} {want.shape}"
    uint = np.dtype(f"u{got.dtype.itemsize}")
    bad = np.argwhere(got.view(uint) != want.view(uint))
    if bad.size == 0:
        return None
    idx = tuple(int(i) for i in bad[0])
    return (f"{len(bad)} of {got.size} elements differ; first at index {idx}: got {float(got[idx])!r}, "
            f"expected {float(want[idx])!r}")


def _prepare(variant: str, case: dict[str, Any]) -> tuple[dict[str, Any], FloatInputs, np.random.Generator]:
    case = dict(case, dtype=str(load_manifest().variant(variant).axes["dtype"]))
    return case, materialize(case), np.random.default_rng(case["seed"] + 1)


def _raise_if(level: str, name: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"{level} check of {name} failed: {problem}")


def check_im2col(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """im2col alone: bit-exact, padded channel slots included; layout padding poisoned."""
    case, inp, garbage = _prepare(variant, case)
    got, name = run_im2col_float(
        inp.x, case["KH"], case["KW"], **inp.conv, input_layout=case["layout"], dtype=case["dtype"],
        variant=variant, device=device, guard=True, pad_garbage=garbage,
    )
    want, _ = reference_float.im2col(inp.x, case["KH"], case["KW"], inp.conv["stride"], inp.conv["padding"],
                                     inp.conv["dilation"], inp.conv["groups"])
    _raise_if("float_im2col", name, _bits_mismatch(got, want))


def _exact_inputs(
    a: np.ndarray, mask: np.ndarray, w_shape: tuple[int, ...], dtype: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer-valued a, weight, bias whose every partial sum (and result) is exact in float32 and dtype."""
    K = w_shape[1] * w_shape[2] * w_shape[3]
    exact = 2.0 ** (np.finfo(dtype).nmant + 1)  # integers up to this are exact in dtype
    r = max(1, math.isqrt(int(exact) // (K + 1)))
    a_int = np.where(a != 0, rng.integers(-r, r + 1, size=a.shape), 0)  # padding taps stay 0
    a_int = np.where(mask, a_int, rng.integers(-1000, 1000, size=a.shape))  # padded slots: noise
    return (a_int.astype(dtype), rng.integers(-r, r + 1, size=w_shape).astype(dtype),
            rng.integers(-r, r + 1, size=w_shape[0]).astype(dtype))


def check_gemm(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """GEMM alone: exact on small integers, then within tolerance on the case's values."""
    case, inp, garbage = _prepare(variant, case)
    dtype, G, act = case["dtype"], inp.conv["groups"], inp.activation
    a, mask = reference_float.im2col(inp.x, case["KH"], case["KW"], inp.conv["stride"], inp.conv["padding"],
                                     inp.conv["dilation"], G)
    a_int, w_int, b_int = _exact_inputs(a, mask, inp.weight.shape, dtype, garbage)
    got, name = run_gemm_float(a_int, w_int, b_int, groups=G, activation=act, dtype=dtype, variant=variant,
                               device=device, guard=True)
    want, _ = reference_float.gemm(a_int, w_int, b_int, G, act)
    problem = _mismatch(got, want, 0.0)
    _raise_if("float_gemm", name, problem and "integer inputs (every sum exact): " + problem)

    noise = garbage.uniform(-1, 1, size=a.shape) * float(np.finfo(dtype).max) / HEADROOM
    a = np.where(mask, a, noise.astype(dtype))  # finite noise times a zero weight adds exactly 0
    got, name = run_gemm_float(a, inp.weight, inp.bias, groups=G, activation=act, dtype=dtype, variant=variant,
                               device=device, guard=True)
    want, magnitude = reference_float.gemm(a, inp.weight, inp.bias, G, act)
    # padded channel slots of `a` hold noise, but their weights are 0: the indicator matrix ignores them
    _, count = reference_float.gemm((a != 0).astype(np.float64), (inp.weight != 0).astype(np.float64), None, G)
    _raise_if("float_gemm", name, _mismatch(got, want, tolerance(magnitude, want, count, dtype)))


def check_conv(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The whole op with this variant forced (the other pass picked automatically), within tolerance."""
    case, inp, garbage = _prepare(variant, case)
    role = load_manifest().variant(variant).role
    forced = variant if role == "float_im2col" else None
    run = run_conv2d_float(inp.x, inp.weight, inp.bias, **inp.conv, activation=inp.activation,
                           input_layout=case["layout"], dtype=case["dtype"], device=device, guard=True,
                           pad_garbage=garbage, im2col_variant=forced,
                           gemm_variant=None if forced else variant)
    want, magnitude = reference_float.conv2d_float_reference(inp.x, inp.weight, inp.bias, **inp.conv,
                                                             activation=inp.activation)
    tol = tolerance(magnitude, want, nonzero_products(inp.x, inp.weight, inp.conv), case["dtype"])
    _raise_if("float_conv", f"{run.im2col_variant} + {run.gemm_variant}", _mismatch(run.output, want, tol))


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import float_cases  # Hypothesis only where cases are drawn

    layout = entry.axes.get("input_layout")
    return float_cases(sorted(manifest.layouts) if layout in (None, "generic") else [str(layout)])


# im2col has no epilogue: bias + relu means nothing to it
IM2COL_CLASSES = tuple(c for c in FLOAT_CLASSES if c != "bias_relu")

LEVELS = (
    Level("float_im2col", ("float_im2col",), check_im2col, _cases,
          "im2col alone, bit-exact, NaN/inf in the layout's padding slots",
          classes_of, conv_cells(_cases, IM2COL_CLASSES)),
    Level("float_gemm", ("float_gemm",), check_gemm, _cases,
          "GEMM alone: exact on small integers, within the derived float32 bound otherwise",
          classes_of, conv_cells(_cases, FLOAT_GEMM_CLASSES)),
    Level("float_conv", ROLES, check_conv, _cases, "the whole op with this variant forced, within the derived bound",
          classes_of, conv_cells(_cases, by_axis(FLOAT_CLASSES, FLOAT_GEMM_CLASSES))),
)
