"""NumPy reference for float conv2d (runtime/conv_float.py) and its im2col and GEMM passes.

Shapes and the im2col matrix follow runtime/reference.py: per group g, row
``m = (n*H_out + ho)*W_out + wo`` and column ``k = (kh*KW + kw)*Cg4*4 + c``, Kp = KH*KW*Cg4*4.
Unlike int8, padding taps *and* padded channel slots hold 0: a float slot the weights multiply
by 0 must still be finite, or NaN * 0 poisons the sum.

Every function computes in float64 from its inputs as given (callers cast them to the op's
dtype first, as the op does), and returns next to the value its *magnitude*: the same sum over
``|x| * |w|`` plus ``|bias|``, which rounding errors are proportional to (runtime/verify_float.py).
The conv reference sums over taps directly instead of going through im2col, so the device's
im2col + GEMM is checked against an independent formulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.reference import conv_out_size, normalize_pair

ACTIVATIONS = ("none", "relu")


def _float(a: np.ndarray, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim or a.dtype.kind != "f":
        raise ValueError(f"{name} must be a {ndim}-D float array, got {a.dtype} of shape {a.shape}")
    return a


def _activate(y: np.ndarray, activation: str) -> np.ndarray:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return np.maximum(y, 0.0) if activation == "relu" else y


def im2col(
    x: np.ndarray, KH: int, KW: int, stride: int | Sequence[int], padding: int | Sequence[int],
    dilation: int | Sequence[int], groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The (G, M, Kp) im2col matrix in x's dtype, and a (Kp,) bool mask of real-channel columns."""
    x = _float(x, "x", 4)
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    n, c_in, h, w = x.shape
    if groups < 1 or c_in % groups:
        raise ValueError(f"C_in={c_in} is not divisible by groups={groups}")
    cg = c_in // groups
    cg4 = -(-cg // 4)
    ho, wo = conv_out_size(h, KH, sh, ph, dh), conv_out_size(w, KW, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    a = np.zeros((groups, n * ho * wo, KH * KW * cg4 * 4), dtype=x.dtype)
    rows, cols = np.arange(ho) * sh, np.arange(wo) * sw
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[:, :, rows[:, None] + kh * dh, cols[None, :] + kw * dw]  # (N, C, Ho, Wo)
            patch = patch.reshape(n, groups, cg, ho, wo).transpose(1, 0, 3, 4, 2).reshape(groups, -1, cg)
            k0 = (kh * KW + kw) * cg4 * 4
            a[:, :, k0 : k0 + cg] = patch
    mask = np.tile(np.arange(cg4 * 4) < cg, KH * KW)
    return a, mask


def weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(G, Kp, OCg) GEMM weight matrix in weight's dtype, tap-major, padded channels 0."""
    weight = _float(weight, "weight", 4)
    c_out, cg, kh, kw = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"C_out={c_out} is not divisible by groups={groups}")
    ocg, cg4 = c_out // groups, -(-cg // 4)
    out = np.zeros((groups, kh, kw, cg4 * 4, ocg), dtype=weight.dtype)
    out[:, :, :, :cg, :] = weight.reshape(groups, ocg, cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return out.reshape(groups, kh * kw * cg4 * 4, ocg)


def pack_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """Flat GEMM weights ``[G][K4][OCg]`` of 4-element words (the 4 k of one output channel)."""
    wm = weight_matrix(weight, groups)
    g, kp, ocg = wm.shape
    return np.ascontiguousarray(wm.reshape(g, kp // 4, 4, ocg).transpose(0, 1, 3, 2)).reshape(-1)


def gemm(
    a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int, activation: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """float64 (G, M, OCg) ``act(a @ W + bias)`` and its magnitude ``|a| @ |W| + |bias|``."""
    a = _float(a, "a", 3)
    wm = weight_matrix(weight, groups).astype(np.float64)
    if a.shape[0] != wm.shape[0] or a.shape[2] != wm.shape[1]:
        raise ValueError(f"im2col matrix {a.shape} does not match weight matrix (G, Kp, OCg)={wm.shape}")
    g, _, ocg = wm.shape
    b = np.zeros((g, 1, ocg)) if bias is None else np.asarray(bias, np.float64).reshape(g, 1, ocg)
    a64 = a.astype(np.float64)
    value = _activate(np.matmul(a64, wm) + b, activation)
    magnitude = np.matmul(np.abs(a64), np.abs(wm)) + np.abs(b)
    return value, magnitude


def conv2d_float_reference(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    activation: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """float64 (N, C_out, H_out, W_out) conv2d and its magnitude, summed tap by tap."""
    x, weight = _float(x, "x", 4), _float(weight, "weight", 4)
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    n, c_in, h, w = x.shape
    c_out, cg, KH, KW = weight.shape
    if groups < 1 or c_in % groups or c_out % groups or cg != c_in // groups:
        raise ValueError(f"x {x.shape} and weight {weight.shape} do not match groups={groups}")
    ho, wo = conv_out_size(h, KH, sh, ph, dh), conv_out_size(w, KW, sw, pw, dw)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    wg = weight.astype(np.float64).reshape(groups, c_out // groups, cg, KH, KW)
    value = np.zeros((n, groups, c_out // groups, ho, wo))
    magnitude = np.zeros_like(value)
    rows, cols = np.arange(ho) * sh, np.arange(wo) * sw
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[:, :, rows[:, None] + kh * dh, cols[None, :] + kw * dw].reshape(n, groups, cg, ho, wo)
            tap = wg[:, :, :, kh, kw]  # (G, OCg, Cg)
            value += np.einsum("ngchw,goc->ngohw", patch, tap)
            magnitude += np.einsum("ngchw,goc->ngohw", np.abs(patch), np.abs(tap))
    b = np.zeros(c_out) if bias is None else np.asarray(bias, np.float64).reshape(c_out)
    value = value.reshape(n, c_out, ho, wo) + b[None, :, None, None]
    magnitude = magnitude.reshape(n, c_out, ho, wo) + np.abs(b)[None, :, None, None]
    return _activate(value, activation), magnitude
