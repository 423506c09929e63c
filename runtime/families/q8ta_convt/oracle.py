"""NumPy oracle of the q8ta_convt family: int8 conv_transpose2d (NumPy only: nothing from runtime).

PyTorch semantics: x (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW); input pixel (ih, iw) adds
(x - x_zp) * w[c, oc, kh, kw] to output pixel (ih*stride_h - pad_h + kh*dil_h, iw*stride_w - pad_w +
kw*dil_w). The accumulators are *scattered* that way (int64, tap by tap, into the uncropped output,
then cropped by the padding): a formulation independent of the device's per-output gather.
H_out = (H-1)*stride - 2*pad + dil*(KH-1) + output_padding + 1; rows past the uncropped extent
(output_padding beyond the padding) receive nothing.

y = acc * x_scale * w_scales[oc] + bias[oc]; relu if asked; q = clip(round_half_even(y / out_scale)
+ out_zp, -128, 127), in float64 (float16 scales and bias widened first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Pair = tuple[int, int]
ACTIVATIONS = ("none", "relu")


def pair(v: int | Sequence[int]) -> Pair:
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))  # type: ignore[index, arg-type]


def out_size(size: int, k: int, s: int, p: int, op: int, d: int) -> int:
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def convt_acc(
    x: np.ndarray, weight: np.ndarray, *, x_zp: int, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
) -> np.ndarray:
    """int64 (N, C_out, H_out, W_out) accumulators sum (x - x_zp) * w, scattered tap by tap."""
    x, weight = np.asarray(x), np.asarray(weight)
    n, c_in, h, w = x.shape
    c_w, ocg, kh, kw = weight.shape
    if c_w != c_in or c_in % groups:
        raise ValueError(f"x {x.shape} and weight {weight.shape} do not match with groups={groups}")
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    h_out, w_out = out_size(h, kh, sh, ph, oph, dh), out_size(w, kw, sw, pw, opw, dw)
    cg = c_in // groups
    xc = (x.astype(np.int64) - int(x_zp)).reshape(n, groups, cg, h, w)
    wg = weight.astype(np.int64).reshape(groups, cg, ocg, kh, kw)
    # the uncropped output: input pixel i lands on full index i*s + k*d; the crop starts at the padding
    full = np.zeros((n, groups, ocg, max((h - 1) * sh + dh * (kh - 1) + 1, ph + h_out),
                     max((w - 1) * sw + dw * (kw - 1) + 1, pw + w_out)), np.int64)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("ngchw,gco->ngohw", xc, wg[:, :, :, i, j])
            full[:, :, :, i * dh: i * dh + (h - 1) * sh + 1: sh, j * dw: j * dw + (w - 1) * sw + 1: sw] += contrib
    return full[:, :, :, ph: ph + h_out, pw: pw + w_out].reshape(n, groups * ocg, h_out, w_out)


def requantize(
    acc: np.ndarray, x_scale: float, w_scales: np.ndarray | None, bias: np.ndarray | None, out_scale: float,
    out_zp: int, activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, scaled, magnitude) of NCHW accumulators, output channel by output channel: q the int8
    output, scaled = y / out_scale before rounding, magnitude = (|acc * x_scale * w_scale| + |bias|) /
    out_scale, the size of the terms a float32 epilogue rounds."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    scaled = np.empty(acc.shape, np.float64)
    magnitude = np.empty(acc.shape, np.float64)
    for oc in range(acc.shape[1]):
        term = acc[:, oc].astype(np.float64) * float(x_scale) * (1.0 if w_scales is None else float(w_scales[oc]))
        b = 0.0 if bias is None else float(bias[oc])
        y = term + b if activation == "none" else np.maximum(term + b, 0.0)
        scaled[:, oc] = y / float(out_scale)
        magnitude[:, oc] = (np.abs(term) + abs(b)) / float(out_scale)
    # round before adding out_zp: scaled + out_zp can itself round in float64 and move a tie
    q = np.clip(np.rint(scaled) + int(out_zp), -128, 127).astype(np.int8)
    return q, scaled, magnitude


def conv_transpose2d_q8_reference(
    x: np.ndarray, weight: np.ndarray, w_scales: np.ndarray, bias: np.ndarray | None, *, x_scale: float, x_zp: int,
    out_scale: float, out_zp: int, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    activation: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The int8 (N, C_out, H_out, W_out) output, with `scaled` and `magnitude` as in :func:`requantize`."""
    acc = convt_acc(x, weight, x_zp=x_zp, stride=stride, padding=padding, output_padding=output_padding,
                    dilation=dilation, groups=groups)
    return requantize(acc, x_scale, w_scales, bias, out_scale, out_zp, activation)


def convt_acc_loops(
    x: np.ndarray, weight: np.ndarray, *, x_zp: int, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
) -> np.ndarray:
    """The same accumulators with plain Python loops over output pixels (a gather, as in the definition
    ``oh + pad - kh*dil = ih*stride``), for cross-checking :func:`convt_acc` on small cases (slow)."""
    n_, c_in, h, w = np.shape(x)
    _, ocg, kh_, kw_ = np.shape(weight)
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    h_out, w_out = out_size(h, kh_, sh, ph, oph, dh), out_size(w, kw_, sw, pw, opw, dw)
    cg = c_in // groups
    xl, wl = np.asarray(x).tolist(), np.asarray(weight).tolist()
    out = np.zeros((n_, groups * ocg, h_out, w_out), np.int64)
    for n in range(n_):
        for oc in range(groups * ocg):
            g, o = divmod(oc, ocg)
            for oh in range(h_out):
                for ow in range(w_out):
                    acc = 0
                    for ki in range(kh_):
                        th = oh + ph - ki * dh
                        if th % sh or not 0 <= th // sh < h:
                            continue
                        for kj in range(kw_):
                            tw = ow + pw - kj * dw
                            if tw % sw or not 0 <= tw // sw < w:
                                continue
                            for c in range(g * cg, (g + 1) * cg):
                                acc += (xl[n][c][th // sh][tw // sw] - x_zp) * wl[c][o][ki][kj]
                    out[n, oc, oh, ow] = acc
    return out
