"""NumPy oracle of the q8ta_linear family (NumPy only: nothing from runtime, no packing helpers).

acc[m, n] = sum_k (x[m, k] - x_zp) * weight[n, k] as an int64 matrix product (no padding, no
4-byte words: an independent formulation of what the GEMM computes);
y = acc * x_scale * w_scales[n] + bias[n]; relu if asked; q = clip(round_half_even(y / out_scale)
+ out_zp, -128, 127). Float math in float64; float16 scales and bias are widened first.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("none", "relu")


def linear_acc(x: np.ndarray, weight: np.ndarray, x_zp: int) -> np.ndarray:
    """int64 (M, N) accumulators of x (M, K) and weight (N, K), zero point removed."""
    x, weight = np.asarray(x), np.asarray(weight)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x (M, K) and weight (N, K) do not match: {x.shape}, {weight.shape}")
    return (x.astype(np.int64) - int(x_zp)) @ weight.astype(np.int64).T


def requantize(
    acc: np.ndarray, x_scale: float, w_scales: np.ndarray | None, bias: np.ndarray | None, out_scale: float,
    out_zp: int, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, scaled, magnitude) of (M, N) accumulators: q the int8 output, scaled = y / out_scale before
    rounding (float64), magnitude = (|acc * x_scale * w_scale| + |bias|) / out_scale, the size of the
    terms a float32 epilogue rounds."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    n = acc.shape[1]
    ws = np.ones(n) if w_scales is None else np.asarray(w_scales, np.float64)
    b = np.zeros(n) if bias is None else np.asarray(bias, np.float64)
    product = acc.astype(np.float64) * float(x_scale) * ws
    y = product + b
    if activation == "relu":
        y = np.maximum(y, 0.0)
    scaled = y / float(out_scale)
    # round before adding out_zp: scaled + out_zp can itself round in float64 and move a tie
    q = np.clip(np.rint(scaled) + int(out_zp), -128, 127).astype(np.int8)
    return q, scaled, (np.abs(product) + np.abs(b)) / float(out_scale)


def linear_q8_reference(
    x: np.ndarray, weight: np.ndarray, w_scales: np.ndarray, bias: np.ndarray | None, *, x_scale: float, x_zp: int,
    out_scale: float, out_zp: int, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The int8 (M, N) output, with `scaled` and `magnitude` as in :func:`requantize`."""
    return requantize(linear_acc(x, weight, x_zp), x_scale, w_scales, bias, out_scale, out_zp, activation)
