"""Hypothesis strategies of int8 linear cases (checks.materialize says what the keys mean)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import quant_params, seeds, value_modes

# sizes 1 .. 70: tiny ones often, multiples of 4 and their neighbours (K's padding, M's and N's
# partial 4-blocks and workgroup tiles) on purpose
sizes = st.one_of(st.integers(1, 9), st.integers(1, 70), st.sampled_from([4, 5, 7, 8, 15, 16, 17, 63, 64, 65]))


@st.composite
def linear_cases(draw: st.DrawFn) -> dict[str, Any]:
    """M, K, N + quantization + tensor values (extremes included)."""
    return {"M": draw(sizes), "K": draw(sizes), "N": draw(sizes), **draw(quant_params()),
            "x_values": draw(value_modes), "w_values": draw(value_modes), "seed": draw(seeds)}
