"""NumPy oracle of the f_conv2d family: float conv2d and its im2col and GEMM passes (NumPy only).

Shapes and the im2col matrix follow the int8 family's: per group g, row
``m = (n*H_out + ho)*W_out + wo`` and column ``k = (kh*KW + kw)*Cg4*4 + c``, Kp = KH*KW*Cg4*4.
Unlike int8, padding taps *and* padded channel slots hold 0: a float slot the weights multiply
by 0 must still be finite, or NaN * 0 poisons the sum.

Every function computes in float64 from its inputs as given (callers cast them to the op's
dtype first, as the op does), and returns next to the value its *magnitude*: the same sum over
``|x| * |w|`` plus ``|bias|``, which rounding errors are proportional to (checks.py).
The conv reference sums over taps directly instead of going through im2col, so the device's
im2col + GEMM is checked against an independent formulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("none", "relu")


def normalize_pair(v: int | Sequence[int], name: str, min_value: int = 0) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)``."""
    h, w = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if min(h, w) < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {v!r}")
    return int(h), int(w)


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(f"kernel {k} (dilation {d}) does not fit input {size} with padding {p}")
    return out


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


def gemm(
    a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int, activation: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """float64 (G, M, OCg) ``act(a @ W + bias)`` and its magnitude ``|a| @ |W| + |bias|``.

    Padded channel columns of ``a`` are ignored (their weights are 0 on the device).
    """
    a = _float(a, "a", 3)
    weight = _float(weight, "weight", 4)
    c_out, cg, kh, kw = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"C_out={c_out} is not divisible by groups={groups}")
    g, m, kp = a.shape
    cg4 = -(-cg // 4)
    if g != groups or kp != kh * kw * cg4 * 4:
        raise ValueError(f"im2col matrix {a.shape} does not match weight {weight.shape} with groups={groups}")
    taps = a.reshape(g, m, kh, kw, cg4 * 4)[..., :cg].astype(np.float64)  # (G, M, KH, KW, Cg)
    w = weight.reshape(g, c_out // g, cg, kh, kw).astype(np.float64)  # (G, OCg, Cg, KH, KW)
    b = np.zeros((g, 1, c_out // g)) if bias is None else np.asarray(bias, np.float64).reshape(g, 1, -1)
    value = _activate(np.einsum("gmhwc,gochw->gmo", taps, w) + b, activation)
    magnitude = np.einsum("gmhwc,gochw->gmo", np.abs(taps), np.abs(w)) + np.abs(b)
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
