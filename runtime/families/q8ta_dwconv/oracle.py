"""NumPy oracle of the q8ta_dwconv family: int8 depthwise conv2d, summed tap by tap.

It imports NumPy only (no op code, no packing helpers, nothing from another family's oracle), so
the op is checked against an independent formulation: a direct loop over the KH x KW taps, each a
strided slice of the input, no im2col matrix and no padded copy.

* x: int8 (N, C, H, W); weight: int8 (C, 1, KH, KW), one filter per channel; stride, padding and
  dilation are (h, w) pairs.
* ``acc[n, c, ho, wo] = sum over in-bounds taps of (x[n, c, hi, wi] - x_zp) * weight[c, 0, kh, kw]``
  with ``hi = ho*stride_h - pad_h + kh*dilation_h`` (and the same along w): a tap in the padding
  adds 0. int64 throughout.
* ``y = acc * x_scale * w_scales[c] + bias[c]``, ReLU if asked,
  ``q = clip(round_half_even(y / out_scale) + out_zp, -128, 127)``; float64 (float16 scales are
  widened first). Next to q the oracle returns y / out_scale and the magnitude of its terms, so a
  check can allow +-1 only where the device's float32 epilogue may round across a tie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("none", "relu")
Pair = tuple[int, int]


def _pair(v: int | Sequence[int]) -> Pair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def _taps(size: int, out: int, k: int, s: int, p: int, d: int) -> list[tuple[int, slice, slice]]:
    """Per kernel index: (index, output range with an in-bounds input, the input slice it reads)."""
    taps = []
    for i in range(k):
        offset = i * d - p  # input index of output 0 at this tap
        first = max(0, -(offset // s))  # first output whose input index is >= 0
        last = min(out - 1, (size - 1 - offset) // s)  # last one whose input index is < size
        if last < first:
            continue
        start = first * s + offset
        taps.append((i, slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)))
    return taps


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def dwconv_acc(
    x: np.ndarray, weight: np.ndarray, *, x_zp: int, stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """int64 (N, C, H_out, W_out) accumulators sum (x - x_zp) * w over the in-bounds taps."""
    if x.dtype != np.int8 or weight.dtype != np.int8 or x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"x and weight must be 4-D int8, got {x.dtype} {x.shape} and {weight.dtype} {weight.shape}")
    n, c, h, w = x.shape
    if weight.shape[:2] != (c, 1):
        raise ValueError(f"weight must be (C={c}, 1, KH, KW), got {weight.shape}")
    kh_, kw_ = weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho, wo = out_size(h, kh_, sh, ph, dh), out_size(w, kw_, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"empty output {ho}x{wo}")
    centered = x.astype(np.int64) - int(x_zp)
    wts = weight.astype(np.int64)[:, 0]  # (C, KH, KW)
    acc = np.zeros((n, c, ho, wo), np.int64)
    for kh, out_h, in_h in _taps(h, ho, kh_, sh, ph, dh):
        for kw, out_w, in_w in _taps(w, wo, kw_, sw, pw, dw):
            acc[:, :, out_h, out_w] += centered[:, :, in_h, in_w] * wts[None, :, kh, kw, None, None]
    return acc


def requantize(
    acc: np.ndarray, *, x_scale: float, w_scales: np.ndarray, bias: np.ndarray | None, out_scale: float,
    out_zp: int, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, scaled, magnitude) of (N, C, H_out, W_out) accumulators: q the int8 output
    ``clip(round_half_even(y / out_scale) + out_zp)``, scaled = y / out_scale before rounding, and
    magnitude = (|acc * x_scale * w_scales[c]| + |bias[c]|) / out_scale, the size of the terms a
    float32 epilogue rounds."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    per_c = (1, -1, 1, 1)
    term = acc.astype(np.float64) * float(x_scale) * np.asarray(w_scales, np.float64).reshape(per_c)
    b = np.zeros(per_c[:1]) if bias is None else np.asarray(bias, np.float64).reshape(per_c)
    y = term + b
    if activation == "relu":
        y = np.maximum(y, 0.0)
    scaled = y / float(out_scale)
    # round before adding out_zp, as the shader does (np.rint rounds ties to even, like roundEven)
    q = np.clip(np.rint(scaled) + int(out_zp), -128, 127).astype(np.int8)
    return q, scaled, (np.abs(term) + np.abs(b)) / float(out_scale)


def dwconv2d_q8_reference(
    x: np.ndarray, weight: np.ndarray, w_scales: np.ndarray, bias: np.ndarray | None, *, x_scale: float,
    x_zp: int, out_scale: float, out_zp: int, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole op: the int8 (N, C, H_out, W_out) output, with `scaled` and `magnitude` as in
    :func:`requantize`."""
    acc = dwconv_acc(x, weight, x_zp=x_zp, stride=stride, padding=padding, dilation=dilation)
    return requantize(acc, x_scale=x_scale, w_scales=w_scales, bias=bias, out_scale=out_scale, out_zp=out_zp,
                      activation=activation)
