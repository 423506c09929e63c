"""Hypothesis strategies of float conv cases (checks.py says what the keys mean)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import activations, conv_shapes, forced_class, seeds

# |v| = 2^u with u from the dtype's range of the mode (normal around 1, large, small, or all of
# them mixed), random signs; a fraction of exact zeros (all of them: output = bias).
float_value_modes = st.sampled_from(["normal", "normal", "large", "small", "mixed"])
zero_fractions = st.sampled_from([0.0, 0.0, 0.3, 1.0])


@st.composite
def float_cases(draw: st.DrawFn, layouts: list[str] | None = None) -> dict[str, Any]:
    """A float conv case: the int8 cases' shapes + value modes, zeros, bias and activation.

    The dtype comes from the variant under test (checks.py adds it). Where the bias_relu class is
    forced (runtime/oplib/cells.py), a bias and relu.
    """
    bias_relu = forced_class() == "bias_relu"
    case = {**draw(conv_shapes()),
            "x_values": draw(float_value_modes), "w_values": draw(float_value_modes),
            "x_zeros": draw(zero_fractions), "w_zeros": draw(zero_fractions),
            "bias": True if bias_relu else draw(st.booleans()),
            "activation": "relu" if bias_relu else draw(activations), "seed": draw(seeds)}
    if layouts:
        case["layout"] = draw(st.sampled_from(sorted(layouts)))
    return case
