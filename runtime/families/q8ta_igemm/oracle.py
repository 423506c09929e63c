"""NumPy oracle of the q8ta_igemm family: int8 conv2d (grouped, strided, padded, dilated), requantized.

NumPy only: nothing from runtime, no packing helper, no other family's oracle. The formulation is
unlike the op's: no K words, no tap-major order, no channel padding. The centered input (x - x_zp)
is zero-padded, every output pixel's receptive field is a window of it
(``numpy.lib.stride_tricks.sliding_window_view`` over the dilated kernel span, subsampled by stride
and dilation), and one einsum per call contracts windows with the weights over (channel, kh, kw),
group by group, in int64.

* x: int8 (N, C_in, H, W); weight: int8 (C_out, C_in / groups, KH, KW); stride, padding, dilation:
  int or (h, w).
* ``acc[n, oc, ho, wo] = sum over c, kh, kw of (xpad[n, g*Cg + c, ho*sh + kh*dh, wo*sw + kw*dw] - x_zp)
  * weight[oc, c, kh, kw]`` with g = oc // OCg and xpad = x padded with x_zp (so padding adds 0).
* ``y = acc * x_scale * w_scales[oc] + bias[oc]``, ReLU if asked,
  ``q = clip(round_half_even(y / out_scale) + out_zp, -128, 127)``, in float64 (float16 scales are
  widened first). Beside q: y / out_scale and the magnitude of the terms a float32 epilogue rounds,
  so a check can allow +-1 only next to a rounding tie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pair = tuple[int, int]


def _hw(v: int | Sequence[int]) -> Pair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    return int(v[0]), int(v[1])


def conv_acc(
    x: np.ndarray, weight: np.ndarray, *, x_zp: int, stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
) -> np.ndarray:
    """int64 (N, C_out, H_out, W_out): sum over the receptive field of (x - x_zp) * weight."""
    if x.dtype != np.int8 or weight.dtype != np.int8 or x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"x and weight must be 4-D int8, got {x.dtype} {x.shape} and {weight.dtype} {weight.shape}")
    n, c_in, _, _ = x.shape
    c_out, cg, kh, kw = weight.shape
    if c_in % groups or c_out % groups or cg * groups != c_in:
        raise ValueError(f"weight {weight.shape} and groups={groups} do not fit x {x.shape}")
    (sh, sw), (ph, pw), (dh, dw) = _hw(stride), _hw(padding), _hw(dilation)
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    centered = np.pad(x.astype(np.int64) - int(x_zp), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if centered.shape[2] < span[0] or centered.shape[3] < span[1]:
        raise ValueError(f"kernel span {span} exceeds the padded input {centered.shape[2:]}")
    # (N, C, positions_h, positions_w, span_h, span_w) -> taps of every stride-th output position
    windows = sliding_window_view(centered, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    ho, wo = windows.shape[2:4]
    per_group = windows.reshape(n, groups, cg, ho, wo, kh, kw)
    w = weight.astype(np.int64).reshape(groups, c_out // groups, cg, kh, kw)
    acc = np.einsum("ngchwij,gocij->ngohw", per_group, w)
    return acc.reshape(n, c_out, ho, wo)


def requantize(
    acc: np.ndarray, *, x_scale: float, w_scales: np.ndarray, bias: np.ndarray | None, out_scale: float,
    out_zp: int, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, y / out_scale, magnitude) of int64 (N, C_out, H_out, W_out) accumulators."""
    if activation not in ("none", "relu"):
        raise ValueError(f"activation must be 'none' or 'relu', got {activation!r}")
    channel = np.asarray(w_scales, np.float64)[None, :, None, None]
    offset = 0.0 if bias is None else np.asarray(bias, np.float64)[None, :, None, None]
    product = acc.astype(np.float64) * float(x_scale) * channel
    y = product + offset
    if activation == "relu":
        y = np.maximum(y, 0.0)
    scaled = y / float(out_scale)
    q = np.clip(np.rint(scaled) + int(out_zp), -128, 127).astype(np.int8)  # rint: half to even
    return q, scaled, (np.abs(product) + np.abs(offset)) / float(out_scale)


def conv2d_q8_reference(
    x: np.ndarray, weight: np.ndarray, w_scales: np.ndarray, bias: np.ndarray | None, *, x_scale: float,
    x_zp: int, out_scale: float, out_zp: int, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1, groups: int = 1, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole op: int8 (N, C_out, H_out, W_out), with y / out_scale and the magnitude as in requantize."""
    acc = conv_acc(x, weight, x_zp=x_zp, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return requantize(acc, x_scale=x_scale, w_scales=w_scales, bias=bias, out_scale=out_scale, out_zp=out_zp,
                      activation=activation)
