"""NumPy oracle of the q8ta_conv2d family: int8 conv2d, its im2col matrix and its GEMM accumulators.

It imports NumPy only (no op code, no shared packing helpers): the op is checked against an
independent formulation. The conv itself is summed tap by tap on the padded input, not through
an im2col matrix; the GEMM accumulators are an einsum over the matrix's tap/channel structure.

Conventions (these are what the shaders implement, so tests compare against them):

* x: int8 (N, C_in, H, W); weight: int8 (C_out, C_in/groups, KH, KW); G = groups,
  Cg = C_in/G, OCg = C_out/G; stride, padding, dilation are (h, w) pairs.
* im2col matrix per group g: row ``m = (n*H_out + ho)*W_out + wo`` (M = N*H_out*W_out);
  column ``k = (kh*KW + kw)*(Cg4*4) + c`` (tap-major, channels padded to Cg4 = ceil(Cg/4)
  groups of 4 per tap), Kp = KH*KW*Cg4*4. A tap in the zero padding holds ``x_zp`` so that
  ``x - x_zp`` is 0 there; padded channel slots (c >= Cg) are unspecified on the GPU.
* The upstream im2col matrix (``im2col_upstream``): int8 (N, H_out, Wp, K), Wp = W_out rounded up to
  a multiple of 4, K = G * Kg with Kg = KH*KW*Cg rounded up to a multiple of 4; element
  ``[n, ho, wo, g*Kg + (kh*KW + kw)*Cg + c]`` is input (n, g*Cg + c) at the tap (kh, kw) of output
  pixel (ho, wo), x_zp outside the image and in each group's K padding. Columns wo >= W_out are the
  taps of the output pixels a conv with Wp output columns would have.
* Packed weights: per group a (K4, OCg) int32 matrix, int (k4, oc) holding the weights of
  k = 4*k4 .. 4*k4+3 in bytes 0..3; padded channels hold 0, so whatever sits in the padded
  im2col slots contributes nothing.
* ``acc = sum_k (a - x_zp) * w = sum_k a*w - x_zp * wsum[oc]``,
  ``y = acc * x_scale * w_scales[oc] + bias[oc]``, optional relu on y,
  ``q = clip(round_half_even(y / out_scale) + out_zp, -128, 127)``.

All float math is float64; float16 scales or biases are widened first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Pair = tuple[int, int]
ACTIVATIONS = ("none", "relu")


def normalize_pair(v: int | Sequence[int], name: str, min_value: int | None = None) -> Pair:
    """``int`` or ``(h, w)`` -> ``(h, w)``; ValueError naming ``name`` otherwise."""

    def is_int(e: object) -> bool:
        return isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_))

    if is_int(v):
        pair = (int(v), int(v))  # type: ignore[arg-type]
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(e) for e in v):
        pair = (int(v[0]), int(v[1]))
    else:
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {v!r}")
    if min_value is not None and min(pair) < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {v!r}")
    return pair


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output extent of one spatial dim; ValueError when the kernel does not fit."""
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(
            f"kernel {k} (dilation {d}) does not fit input {size} with padding {p}: output size would be {out}"
        )
    return out


def _as_int8(a: np.ndarray, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.dtype != np.int8:
        if a.size and (a.min() < -128 or a.max() > 127):
            raise ValueError(f"{name} has values outside the int8 range")
        a = a.astype(np.int8)
    return a


def _check_zp(zp: int, name: str) -> int:
    if not isinstance(zp, (int, np.integer)) or isinstance(zp, (bool, np.bool_)):
        raise ValueError(f"{name} must be an int, got {zp!r}")
    if not -128 <= zp <= 127:
        raise ValueError(f"{name} must be in [-128, 127], got {zp}")
    return int(zp)


def im2col(
    x: np.ndarray,
    KH: int,
    KW: int,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    groups: int,
    x_zp: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The (G, M, Kp) int8 im2col matrix and a (Kp,) bool mask of real-channel columns.

    Padded channel slots are filled with ``x_zp`` (any value would do: their weights are 0).
    """
    x = _as_int8(x, "x", 4)
    x_zp = _check_zp(x_zp, "x_zp")
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    n, c_in, h, w = x.shape
    if groups < 1 or c_in % groups != 0:
        raise ValueError(f"C_in={c_in} is not divisible by groups={groups}")
    cg = c_in // groups
    cg4 = -(-cg // 4)
    ho = conv_out_size(h, KH, sh, ph, dh)
    wo = conv_out_size(w, KW, sw, pw, dw)
    m = n * ho * wo
    kp = KH * KW * cg4 * 4

    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=x_zp)
    a = np.full((groups, m, kp), x_zp, dtype=np.int8)
    rows = np.arange(ho) * sh
    cols = np.arange(wo) * sw
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[:, :, rows[:, None] + kh * dh, cols[None, :] + kw * dw]  # (N, C, Ho, Wo)
            patch = patch.reshape(n, groups, cg, ho, wo).transpose(1, 0, 3, 4, 2)
            k0 = (kh * KW + kw) * cg4 * 4
            a[:, :, k0 : k0 + cg] = patch.reshape(groups, m, cg)
    mask = np.tile(np.arange(cg4 * 4) < cg, KH * KW)
    return a, mask


def im2col_upstream(
    x: np.ndarray,
    KH: int,
    KW: int,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    groups: int,
    x_zp: int,
) -> np.ndarray:
    """The int8 (N, H_out, Wp, K) im2col matrix in the upstream format, every byte specified.

    Built pixel by pixel from input coordinates (no shared code with :func:`im2col`): the reduction
    index of group g runs channel fastest, then kernel x, then kernel y.
    """
    x = _as_int8(x, "x", 4)
    x_zp = _check_zp(x_zp, "x_zp")
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    n, c_in, h, w = x.shape
    if groups < 1 or c_in % groups != 0:
        raise ValueError(f"C_in={c_in} is not divisible by groups={groups}")
    cg = c_in // groups
    ho = conv_out_size(h, KH, sh, ph, dh)
    wo = conv_out_size(w, KW, sw, pw, dw)
    wp = (wo + 3) // 4 * 4
    kg = (KH * KW * cg + 3) // 4 * 4
    out = np.full((n, ho, wp, groups, kg), x_zp, dtype=np.int8)
    oy = np.arange(ho)
    ox = np.arange(wp)  # padding pixels included: they are taps of a wider output
    for kh in range(KH):
        iy = oy * sh - ph + kh * dh
        y_ok = (iy >= 0) & (iy < h)
        for kw in range(KW):
            ix = ox * sw - pw + kw * dw
            x_ok = (ix >= 0) & (ix < w)
            ok = y_ok[:, None] & x_ok[None, :]  # (Ho, Wp)
            vals = x[:, :, np.clip(iy, 0, h - 1)[:, None], np.clip(ix, 0, w - 1)[None, :]]  # (N, C, Ho, Wp)
            vals = np.where(ok[None, None], vals, np.int8(x_zp))
            k0 = (kh * KW + kw) * cg
            out[:, :, :, :, k0 : k0 + cg] = vals.reshape(n, groups, cg, ho, wp).transpose(0, 3, 4, 1, 2)
    return out.reshape(n, ho, wp, groups * kg)


def gemm_acc_upstream(a: np.ndarray, weight: np.ndarray, groups: int, w_out: int) -> np.ndarray:
    """int64 (G, M, OCg) raw accumulators of an upstream-format matrix ``a`` (N, H_out, Wp, K): row
    ``m = (n*H_out + ho)*W_out + wo`` for wo < W_out (padding pixels dropped); each group's K padding is
    ignored whatever it holds."""
    a = _as_int8(a, "a", 4)
    weight = _as_int8(weight, "weight", 4)
    c_out, cg, kh, kw = weight.shape
    n, ho, wp, k = a.shape
    kg = (kh * kw * cg + 3) // 4 * 4
    if groups < 1 or c_out % groups or k != groups * kg or not w_out <= wp:
        raise ValueError(f"upstream matrix {a.shape} does not match weight {weight.shape}, groups={groups}, "
                         f"W_out={w_out}")
    rows = a[:, :, :w_out, :].reshape(n * ho * w_out, groups, kg)[:, :, : kh * kw * cg].astype(np.int64)
    # weight (G, OCg, Cg, KH, KW) -> (G, KH, KW, Cg, OCg): the reduction order of the matrix
    wk = weight.reshape(groups, c_out // groups, cg, kh, kw).transpose(0, 3, 4, 2, 1).astype(np.int64)
    return np.einsum("mgk,gko->gmo", rows, wk.reshape(groups, kh * kw * cg, c_out // groups))


def weight_sums(weight: np.ndarray) -> np.ndarray:
    """int64 (C_out,) sums of each output channel's weights: ``x_zp * wsum`` is what padding-free
    accumulators over-count when x is not centred."""
    return np.asarray(_as_int8(weight, "weight", 4), dtype=np.int64).sum(axis=(1, 2, 3))


def gemm_acc(a: np.ndarray, weight: np.ndarray, groups: int) -> np.ndarray:
    """int64 (G, M, OCg) raw accumulators ``sum_k a * w`` (zero point not removed).

    Padded channel columns of ``a`` are ignored whatever they hold.
    """
    a = _as_int8(a, "a", 3)
    weight = _as_int8(weight, "weight", 4)
    c_out, cg, kh, kw = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"C_out={c_out} is not divisible by groups={groups}")
    cg4 = -(-cg // 4)
    g, m, kp = a.shape
    if g != groups or kp != kh * kw * cg4 * 4:
        raise ValueError(f"im2col matrix {a.shape} does not match weight {weight.shape} with groups={groups}")
    taps = a.reshape(g, m, kh, kw, cg4 * 4)[..., :cg].astype(np.int64)  # (G, M, KH, KW, Cg)
    w = weight.reshape(g, c_out // g, cg, kh, kw).astype(np.int64)  # (G, OCg, Cg, KH, KW)
    return np.einsum("gmhwc,gochw->gmo", taps, w)


def _per_channel(v: np.ndarray | None, c_out: int, name: str, default: float) -> np.ndarray:
    if v is None:
        return np.full(c_out, default, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.shape != (c_out,):
        raise ValueError(f"{name} must have C_out={c_out} entries, got {v.size}")
    return v


def _scaled_output(
    acc: np.ndarray,
    x_scale: float,
    w_scales: np.ndarray | None,
    bias: np.ndarray | None,
    out_scale: float,
    activation: str,
) -> np.ndarray:
    """float64 ``y / out_scale`` for zero-point-corrected accumulators."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not out_scale > 0 or not x_scale > 0:
        raise ValueError(f"x_scale and out_scale must be > 0, got {x_scale}, {out_scale}")
    acc = np.asarray(acc)
    if acc.ndim == 3:
        g, _, ocg = acc.shape
        c_out = g * ocg
        shape: tuple[int, ...] = (g, 1, ocg)
    elif acc.ndim == 4:
        c_out = acc.shape[1]
        shape = (1, c_out, 1, 1)
    else:
        raise ValueError(f"acc must be (G, M, OCg) or (N, C_out, Ho, Wo), got shape {acc.shape}")
    ws = _per_channel(w_scales, c_out, "w_scales", 1.0).reshape(shape)
    b = _per_channel(bias, c_out, "bias", 0.0).reshape(shape)
    y = acc.astype(np.float64) * float(x_scale) * ws + b
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return y / float(out_scale)


def requantize_float(
    acc: np.ndarray,
    x_scale: float,
    w_scales: np.ndarray | None,
    bias: np.ndarray | None,
    out_scale: float,
    out_zp: int,
    activation: str = "none",
) -> np.ndarray:
    """The exact pre-rounding value ``y/out_scale + out_zp`` (float64, not clipped).

    ``acc`` (zero point already removed) is either (G, M, OCg), output channel
    ``g*OCg + oc``, or (N, C_out, Ho, Wo).
    """
    out_zp = _check_zp(out_zp, "out_zp")
    return _scaled_output(acc, x_scale, w_scales, bias, out_scale, activation) + out_zp


def requantize(
    acc: np.ndarray,
    x_scale: float,
    w_scales: np.ndarray | None,
    bias: np.ndarray | None,
    out_scale: float,
    out_zp: int,
    activation: str = "none",
) -> np.ndarray:
    """int8 ``clip(round_half_even(y/out_scale) + out_zp)``; shapes as in requantize_float."""
    out_zp = _check_zp(out_zp, "out_zp")
    s = _scaled_output(acc, x_scale, w_scales, bias, out_scale, activation)
    # Round before adding out_zp: s + out_zp can itself round in float64 and move a tie.
    return _saturate(np.rint(s) + out_zp)


def _saturate(v: np.ndarray) -> np.ndarray:
    # np.rint (used by callers) rounds ties to even, which is what GLSL roundEven() does.
    return np.clip(v, -128, 127).astype(np.int8)


def _check_conv(x: np.ndarray, weight: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    x = _as_int8(x, "x", 4)
    weight = _as_int8(weight, "weight", 4)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"C_in={c_in} and C_out={c_out} must be divisible by groups={groups}")
    if weight.shape[1] != c_in // groups:
        raise ValueError(f"weight has {weight.shape[1]} input channels, expected C_in/groups={c_in // groups}")
    return x, weight


def conv2d_q8_reference(
    x: np.ndarray,
    weight: np.ndarray,
    w_scales: np.ndarray,
    bias: np.ndarray | None,
    *,
    x_scale: float,
    x_zp: int,
    out_scale: float,
    out_zp: int,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    activation: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Quantized conv2d, summed tap by tap over the input padded with x_zp.

    Returns the int8 (N, C_out, Ho, Wo) output and the unclipped pre-rounding value
    ``y/out_scale + out_zp`` (float64), for tolerance checks against device results.
    """
    x, weight = _check_conv(x, weight, groups)
    x_zp = _check_zp(x_zp, "x_zp")
    n, _, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    ho = conv_out_size(h, kh, sh, ph, dh)
    wo = conv_out_size(w, kw, sw, pw, dw)
    # padding taps hold x_zp, so (x - x_zp) is 0 there
    xc = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    wg = weight.astype(np.int64).reshape(groups, c_out // groups, cg, kh, kw)
    acc = np.zeros((n, groups, c_out // groups, ho, wo), dtype=np.int64)
    rows, cols = np.arange(ho) * sh, np.arange(wo) * sw
    for i in range(kh):
        for j in range(kw):
            patch = xc[:, :, rows[:, None] + i * dh, cols[None, :] + j * dw].reshape(n, groups, cg, ho, wo)
            acc += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j])
    acc_nchw = acc.reshape(n, c_out, ho, wo)
    q = requantize(acc_nchw, x_scale, w_scales, bias, out_scale, out_zp, activation)
    v = requantize_float(acc_nchw, x_scale, w_scales, bias, out_scale, out_zp, activation)
    return q, v


def conv2d_direct_loops(
    x: np.ndarray,
    weight: np.ndarray,
    w_scales: np.ndarray,
    bias: np.ndarray | None,
    *,
    x_scale: float,
    x_zp: int,
    out_scale: float,
    out_zp: int,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    activation: str = "none",
) -> np.ndarray:
    """The same conv2d with plain Python loops, as an independent cross-check (slow)."""
    x, weight = _check_conv(x, weight, groups)
    x_zp = _check_zp(x_zp, "x_zp")
    out_zp = _check_zp(out_zp, "out_zp")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    sh, sw = normalize_pair(stride, "stride", 1)
    ph, pw = normalize_pair(padding, "padding", 0)
    dh, dw = normalize_pair(dilation, "dilation", 1)
    n_, _, h, w = x.shape
    c_out, cg, kh_, kw_ = weight.shape
    ocg = c_out // groups
    ho_ = conv_out_size(h, kh_, sh, ph, dh)
    wo_ = conv_out_size(w, kw_, sw, pw, dw)
    xl = x.tolist()
    wl = weight.tolist()
    ws = [float(s) for s in np.asarray(w_scales, dtype=np.float64).reshape(-1)]
    bl = [0.0] * c_out if bias is None else [float(b) for b in np.asarray(bias, np.float64)]
    x_scale, out_scale = float(x_scale), float(out_scale)

    out = np.zeros((n_, c_out, ho_, wo_), dtype=np.int8)
    for n in range(n_):
        for oc in range(c_out):
            g = oc // ocg
            for oh in range(ho_):
                for ow in range(wo_):
                    acc = 0
                    for c in range(cg):
                        for ki in range(kh_):
                            ih = oh * sh - ph + ki * dh
                            if not 0 <= ih < h:
                                continue
                            for kj in range(kw_):
                                iw = ow * sw - pw + kj * dw
                                if 0 <= iw < w:
                                    xv = xl[n][g * cg + c][ih][iw]
                                    acc += (xv - x_zp) * wl[oc][c][ki][kj]
                    # Same float64 operation order as requantize_float, so results match exactly.
                    y = acc * x_scale * ws[oc] + bl[oc]
                    if activation == "relu":
                        y = max(y, 0.0)
                    q = round(y / out_scale) + out_zp  # round() ties to even, like np.rint
                    out[n, oc, oh, ow] = min(127, max(-128, q))
    return out
