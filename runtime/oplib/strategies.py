"""Hypothesis strategies the op families share: spatial axes, channel/group splits, whole conv shapes,
and int8 quantization parameters.

Every strategy yields plain JSON-able dicts, so a shrunk failure prints as a case that
`python -m runtime.tools.repro` reruns exactly. Imported only where cases are drawn (tests, fuzz).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

seeds = st.integers(0, 2**31 - 1)
kernel_sizes = st.sampled_from([1, 1, 2, 3, 3, 4, 5, 7])
strides = st.integers(1, 4)
dilations = st.sampled_from([1, 1, 1, 2, 3])
activations = st.sampled_from(["none", "relu"])


@st.composite
def spatial_axis(draw: st.DrawFn, max_size: int = 11) -> dict[str, int]:
    """One spatial axis: size, kernel, stride, padding, dilation with a non-empty output.

    Sizes smaller than the kernel span are reached by drawing the padding that makes them fit.
    """
    k = draw(kernel_sizes)
    d = draw(dilations) if k > 1 else 1
    span = d * (k - 1) + 1
    size = draw(st.integers(1, max_size))
    min_pad = max(0, -(-(span - size) // 2))
    pad = draw(st.integers(min_pad, min_pad + 2))
    return {"size": size, "k": k, "s": draw(strides), "p": pad, "d": d}


@st.composite
def channel_groups(draw: st.DrawFn) -> dict[str, int]:
    """C_in, C_out, groups: dense, grouped or depthwise, channel counts often not multiples of 4."""
    kind = draw(st.sampled_from(["dense", "dense", "grouped", "depthwise"]))
    if kind == "dense":
        return {"C_in": draw(st.integers(1, 13)), "C_out": draw(st.integers(1, 13)), "groups": 1}
    if kind == "depthwise":
        c = draw(st.integers(1, 10))
        return {"C_in": c, "C_out": c * draw(st.sampled_from([1, 1, 2])), "groups": c}
    g = draw(st.integers(2, 4))
    return {"C_in": g * draw(st.integers(1, 5)), "C_out": g * draw(st.integers(1, 5)), "groups": g}


@st.composite
def conv_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Shape and conv parameters of one int8 conv2d."""
    h = draw(spatial_axis())
    w = draw(spatial_axis())
    return {
        "N": draw(st.sampled_from([1, 1, 2, 3])),
        **draw(channel_groups()),
        "H": h["size"], "W": w["size"], "KH": h["k"], "KW": w["k"],
        "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]], "dilation": [h["d"], w["d"]],
    }


# --- int8 quantization parameters (every int8 family) ---------------------------------------------

zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
value_modes = st.sampled_from(["random", "random", "random", "extremes", "min", "max"])
# out_scale relative to the one that maps max|y| to 127: tiny saturates, huge rounds to zero
out_scale_factors = st.sampled_from([0.01, 0.3, 1.0, 1.0, 1.0, 2.5, 300.0])
x_scales = st.one_of(st.sampled_from([1e-4, 0.05, 7.5]), st.floats(1e-3, 2.0))
w_scale_ranges = st.sampled_from([(0.001, 0.02), (1e-5, 1e-4), (0.5, 4.0)])


@st.composite
def quant_params(draw: st.DrawFn) -> dict[str, Any]:
    """Zero points, scales, bias and activation, extremes included."""
    return {
        "x_zp": draw(zero_points),
        "out_zp": draw(zero_points),
        "x_scale": draw(x_scales),
        "w_scale_range": list(draw(w_scale_ranges)),
        "out_scale_factor": draw(out_scale_factors),
        "bias": draw(st.booleans()),
        "bias_scale": draw(st.sampled_from([0.0, 1.0, 50.0])),
        "activation": draw(activations),
    }
