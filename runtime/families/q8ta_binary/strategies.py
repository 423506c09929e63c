"""Hypothesis strategies of int8 add / mul cases: broadcasting shapes, mixed layouts, saturation.

Every strategy yields plain JSON-able dicts (checks.materialize says what the keys mean), so a shrunk
failure prints as a case that `python -m runtime.tools.repro` reruns exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import activations, seeds

sizes = st.one_of(st.integers(1, 11), st.sampled_from([4, 8, 16]))
channels = st.one_of(st.integers(1, 13), st.sampled_from([16, 17]))
zero_points = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))
value_modes = st.sampled_from(["random", "random", "random", "extremes", "min", "max"])
# log-uniform between extremes, and a few exact values (powers of two make .5 ties exact)
scales = st.one_of(st.sampled_from([1.0, 0.5, 2.0**-10, 0.05, 3.0]),
                   st.floats(-20, 20).map(lambda e: float(2.0**e)),
                   st.sampled_from([1e-30, 1e30]))
# out_scale relative to the one that maps the largest |y| to 127: tiny saturates both ends, huge gives 0
out_scale_factors = st.sampled_from([1e-4, 0.01, 0.3, 1.0, 1.0, 1.0, 2.5, 300.0])
residencies = st.sampled_from(["array", "array", "packed", "device"])
packed_outs = st.sampled_from([None, None, True, False])


@st.composite
def binary_cases(draw: st.DrawFn, layout: str | None, layouts: list[str]) -> dict[str, Any]:
    """A case for a variant specialized for `layout` (a and output in it; b the same shape and
    layout, or per channel / scalar on the host), or for the generic variant (layout None: any layouts
    for a and b, any broadcasting, a included)."""
    if layout is None:
        broadcast = draw(st.sampled_from(["same", "channel", "scalar", "random", "random", "both"]))
        a_layout, b_layout = draw(st.sampled_from(layouts)), draw(st.sampled_from(layouts))
        b_residency = draw(residencies)
    else:
        broadcast = draw(st.sampled_from(["same", "channel", "scalar"]))
        a_layout = b_layout = layout
        b_residency = draw(residencies if broadcast == "same" else st.sampled_from(["array", "packed"]))
    return {
        "N": draw(st.sampled_from([1, 1, 2, 3])), "C": draw(channels), "H": draw(sizes), "W": draw(sizes),
        "broadcast": broadcast, "a_layout": a_layout, "b_layout": b_layout,
        "a_residency": draw(residencies), "b_residency": b_residency, "packed_out": draw(packed_outs),
        "a_values": draw(value_modes), "b_values": draw(value_modes),
        "a_scale": draw(scales), "b_scale": draw(scales), "a_zp": draw(zero_points), "b_zp": draw(zero_points),
        "out_scale_factor": draw(out_scale_factors), "out_zp": draw(zero_points), "activation": draw(activations),
        "seed": draw(seeds),
    }
