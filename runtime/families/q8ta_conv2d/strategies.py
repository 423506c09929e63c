"""Hypothesis strategies of int8 conv cases: named, composable, and aimed at the edges.

Every strategy yields plain JSON-able dicts (checks.materialize says what the keys mean), so a
shrunk failure prints as a case that `python -m runtime.tools.repro` reruns exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import activations, conv_shapes, seeds

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


@st.composite
def conv_cases(draw: st.DrawFn, layouts: list[str] | None = None) -> dict[str, Any]:
    """A whole case: shape + quantization + tensor values (+ a layout, when a list is given)."""
    case = {**draw(conv_shapes()), **draw(quant_params()),
            "x_values": draw(value_modes), "w_values": draw(value_modes), "seed": draw(seeds)}
    if layouts:
        case["layout"] = draw(st.sampled_from(sorted(layouts)))
    return case
