"""Hypothesis strategies the op families share: spatial axes, channel/group splits, whole conv shapes,
and int8 quantization parameters.

Every strategy yields plain JSON-able dicts, so a shrunk failure prints as a case that
`python -m runtime.tools.repro` reruns exactly. Imported only where cases are drawn (tests, fuzz).

Coverage cells (runtime/oplib/cells.py) force a class of cases on a family's own strategy by
drawing it inside :func:`forcing`: while a class is forced, the blocks below (spatial axes,
channel splits, batch sizes, whole shapes, quantization parameters) draw only cases of that
class, so every family built from them is forced with no code of its own.
"""

from __future__ import annotations

import contextvars
from typing import Any

from hypothesis import strategies as st

seeds = st.integers(0, 2**31 - 1)
kernel_sizes = st.sampled_from([1, 1, 2, 3, 3, 4, 5, 7])
strides = st.integers(1, 4)
dilations = st.sampled_from([1, 1, 1, 2, 3])
activations = st.sampled_from(["none", "relu"])
batch_sizes = st.sampled_from([1, 1, 2, 3])

# the coverage class being forced (cells.py names them) and the rows one workgroup of the variant
# under test covers (m_tail needs more rows than that); None: nothing forced
_FORCED: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("forced_class", default=None)


def forced_class() -> str | None:
    """The class being forced while a cell's cases are drawn, else None."""
    forced = _FORCED.get()
    return forced[0] if forced else None


def forced_block_m() -> int:
    forced = _FORCED.get()
    return forced[1] if forced else 0


@st.composite
def forcing(draw: st.DrawFn, inner: Any, klass: str, block_m: int = 0) -> Any:
    """Draw `inner` with coverage class `klass` forced on the shared blocks below."""
    token = _FORCED.set((klass, block_m))
    try:
        return draw(inner)
    finally:
        _FORCED.reset(token)


@st.composite
def batch(draw: st.DrawFn) -> int:
    """N: mostly 1; 2 or 3 where the batch class is forced."""
    return draw(st.sampled_from([2, 3]) if forced_class() == "batch" else batch_sizes)


@st.composite
def spatial_axis(
    draw: st.DrawFn, max_size: int = 11, *, min_stride: int = 1, dilated: bool = False, padded: bool = False
) -> dict[str, int]:
    """One spatial axis: size, kernel, stride, padding, dilation with a non-empty output.

    Sizes smaller than the kernel span are reached by drawing the padding that makes them fit.
    `min_stride`, `dilated` (kernel > 1, dilation >= 2) and `padded` (padding >= 1) force classes.
    """
    k = draw(st.sampled_from([2, 3, 3, 5]) if dilated else kernel_sizes)
    d = draw(st.sampled_from([2, 3]) if dilated else dilations) if k > 1 else 1
    span = d * (k - 1) + 1
    size = draw(st.integers(1, max_size))
    min_pad = max(0, -(-(span - size) // 2), 1 if padded else 0)
    pad = draw(st.integers(min_pad, min_pad + 2))
    return {"size": size, "k": k, "s": draw(strides if min_stride == 1 else st.integers(min_stride, 4)),
            "p": pad, "d": d}


def _axis_for_output(draw: st.DrawFn, out: int) -> dict[str, int]:
    """A small-kernel axis whose output size is `out` (the input size follows from it)."""
    k = draw(st.sampled_from([1, 2, 3]))
    s = draw(st.sampled_from([1, 1, 2]))
    p = draw(st.integers(0, k - 1))
    # H_out = (size + 2p - k) // s + 1 = out for size = (out - 1) s + k - 2p + r, 0 <= r < s
    size = max(1, (out - 1) * s + k - 2 * p + draw(st.integers(0, s - 1)))
    return {"size": size, "k": k, "s": s, "p": p, "d": 1, "out": (size + 2 * p - k) // s + 1}


@st.composite
def tail_axes(draw: st.DrawFn, block_m: int = 0) -> tuple[dict[str, int], dict[str, int], int]:
    """(h axis, w axis, N) whose output has an M tail: W_out % 4 != 0, M = N H_out W_out not a multiple
    of 4 and more than `block_m` rows, so the last of several workgroups gets a partial tile."""
    n = draw(st.sampled_from([1, 3]))  # odd, as W_out: M % 4 then follows H_out % 4
    out_w = draw(st.sampled_from([5, 7, 9, 11, 13, 19, 27]))
    need = block_m // (n * out_w) + 1
    out_h = need + draw(st.integers(0, 3))
    out_h += out_h % 4 == 0
    w = _axis_for_output(draw, out_w)
    h = _axis_for_output(draw, out_h)
    return h, w, n


@st.composite
def channel_groups(draw: st.DrawFn, kind: str | None = None, cin_tail: bool = False) -> dict[str, int]:
    """C_in, C_out, groups: dense, grouped or depthwise, channel counts often not multiples of 4.

    `kind` (or a forced grouped / depthwise class) picks the split; `cin_tail` (or the forced
    cin_tail class) makes C_in not a multiple of 4."""
    forced = forced_class()
    kind = kind or (forced if forced in ("grouped", "depthwise") else None)
    cin_tail = cin_tail or forced == "cin_tail"
    kind = kind or draw(st.sampled_from(["dense", "dense", "grouped", "depthwise"]))
    if kind == "dense":
        c_in = st.sampled_from([1, 2, 3, 5, 6, 7, 9, 10, 11, 13]) if cin_tail else st.integers(1, 13)
        return {"C_in": draw(c_in), "C_out": draw(st.integers(1, 13)), "groups": 1}
    if kind == "depthwise":
        low = 2 if forced == "depthwise" else 1
        c = draw(st.sampled_from([2, 3, 5, 6, 7, 9, 10]) if cin_tail else st.integers(low, 10))
        return {"C_in": c, "C_out": c * draw(st.sampled_from([1, 1, 2])), "groups": c}
    if cin_tail:  # 2 or 3 groups of an odd count: C_in is 2 mod 4 or odd
        g = draw(st.sampled_from([2, 3]))
        return {"C_in": g * draw(st.sampled_from([1, 3, 5])), "C_out": g * draw(st.integers(1, 5)), "groups": g}
    g = draw(st.integers(2, 4))
    return {"C_in": g * draw(st.integers(1, 5)), "C_out": g * draw(st.integers(1, 5)), "groups": g}


def _shape(h: dict[str, int], w: dict[str, int], n: int, channels: dict[str, int]) -> dict[str, Any]:
    return {
        "N": n, **channels,
        "H": h["size"], "W": w["size"], "KH": h["k"], "KW": w["k"],
        "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]], "dilation": [h["d"], w["d"]],
    }


@st.composite
def conv_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Shape and conv parameters of one int8 conv2d (forced into a class inside :func:`forcing`)."""
    forced = forced_class()
    if forced == "m_tail":
        h, w, n = draw(tail_axes(forced_block_m()))
        return _shape(h, w, n, draw(channel_groups()))
    if forced == "k_tail":  # odd kernels: many taps, and an odd number of them (cells.py filters the rest)
        odd = st.sampled_from([3, 5, 7])
        kh, kw = draw(odd), draw(odd)
        h, w = draw(spatial_axis()), draw(spatial_axis())
        h, w = ({**a, "k": k, "d": 1, "p": max(a["p"], -(-(k - a["size"]) // 2))} for a, k in ((h, kh), (w, kw)))
        return _shape(h, w, draw(batch()), draw(channel_groups(cin_tail=draw(st.booleans()))))
    # which axis carries a forced dilation / padding
    dilated_axis = draw(st.sampled_from(["h", "w"])) if forced == "dilation" else None
    padded_axis = draw(st.sampled_from(["h", "w"])) if forced in ("pad_xzp", "padding") else None
    h = draw(spatial_axis(dilated=dilated_axis == "h", padded=padded_axis == "h"))
    w = draw(spatial_axis(min_stride=2 if forced == "stride_w" else 1, dilated=dilated_axis == "w",
                          padded=padded_axis == "w"))
    return _shape(h, w, draw(batch()), draw(channel_groups()))


# --- int8 quantization parameters (every int8 family) ---------------------------------------------

zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
nonzero_zero_points = st.one_of(st.sampled_from([-128, 127, 1]), st.integers(-128, 127).filter(bool))
value_modes = st.sampled_from(["random", "random", "random", "extremes", "min", "max"])
# out_scale relative to the one that maps max|y| to 127: tiny saturates, huge rounds to zero
out_scale_factors = st.sampled_from([0.01, 0.3, 1.0, 1.0, 1.0, 2.5, 300.0])
x_scales = st.one_of(st.sampled_from([1e-4, 0.05, 7.5]), st.floats(1e-3, 2.0))
w_scale_ranges = st.sampled_from([(0.001, 0.02), (1e-5, 1e-4), (0.5, 4.0)])


@st.composite
def quant_params(draw: st.DrawFn) -> dict[str, Any]:
    """Zero points, scales, bias and activation, extremes included (a non-zero bias with relu where
    the bias_relu class is forced, a non-zero x_zp where pad_xzp is)."""
    forced = forced_class()
    bias_relu = forced == "bias_relu"
    return {
        "x_zp": draw(nonzero_zero_points if forced == "pad_xzp" else zero_points),
        "out_zp": draw(zero_points),
        "x_scale": draw(x_scales),
        "w_scale_range": list(draw(w_scale_ranges)),
        "out_scale_factor": draw(out_scale_factors),
        "bias": True if bias_relu else draw(st.booleans()),
        "bias_scale": draw(st.sampled_from([1.0, 50.0] if bias_relu else [0.0, 1.0, 50.0])),
        "activation": "relu" if bias_relu else draw(activations),
    }
