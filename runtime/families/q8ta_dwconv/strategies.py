"""Hypothesis strategies of depthwise int8 conv cases, aimed at the edges.

Shapes come from the shared spatial-axis strategy (odd sizes, kernels wider than the input reached
through padding, per-axis stride and dilation); channel counts are often not multiples of 4 and
sometimes span several workgroups; the quantization parameters are those of every int8 op (same contract).
Every case is a plain JSON-able dict (checks.materialize says what the keys mean).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import batch, quant_params, seeds, spatial_axis, value_modes

# 1..13 hits every C % 4; 33 and 130 need several words and, for wg.x = 8 / 32, several workgroups
channels = st.one_of(st.integers(1, 13), st.sampled_from([16, 33, 130]))
# mostly small; sometimes wide enough for several width tiles per workgroup row
axis_sizes = st.sampled_from([11, 11, 11, 40])


@st.composite
def unrolled_axis(draw: st.DrawFn, dilations: tuple[int, ...] = (1,)) -> dict[str, int]:
    """A 3-tap axis, stride 1 or 2: what the templates unroll (`unrolled_taps` in variants.yaml: any
    dilation along H, 1 along W), which spatial_axis draws only now and then."""
    d = draw(st.sampled_from(dilations))
    size = draw(st.integers(1, draw(axis_sizes)))
    pad = draw(st.integers(max(0, -(-(2 * d + 1 - size) // 2)), 2 * d))
    return {"size": size, "k": 3, "s": draw(st.sampled_from([1, 2])), "p": pad, "d": d}


@st.composite
def dw_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Shape and conv parameters of one depthwise conv: any, or (one case in three) an unrolled one."""
    unrolled = draw(st.integers(0, 2)) == 0
    h = draw(unrolled_axis((1, 1, 2)) if unrolled else spatial_axis(draw(axis_sizes)))
    w = draw(unrolled_axis() if unrolled else spatial_axis(draw(axis_sizes)))
    return {
        "N": draw(batch()), "C": draw(channels),
        "H": h["size"], "W": w["size"], "KH": h["k"], "KW": w["k"],
        "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]], "dilation": [h["d"], w["d"]],
    }


@st.composite
def dw_cases(draw: st.DrawFn, layouts: list[str]) -> dict[str, Any]:
    """A whole case: shape + quantization + tensor values + the input layout."""
    return {**draw(dw_shapes()), **draw(quant_params()), "x_values": draw(value_modes),
            "w_values": draw(value_modes), "seed": draw(seeds), "layout": draw(st.sampled_from(sorted(layouts)))}
