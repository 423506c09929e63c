"""Hypothesis strategies of int8 conv_transpose2d cases (checks.materialize says what the keys mean)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import (
    batch,
    channel_groups,
    dilations,
    kernel_sizes,
    quant_params,
    seeds,
    value_modes,
)


@st.composite
def convt_axis(draw: st.DrawFn, max_size: int = 9) -> dict[str, int]:
    """One spatial axis: input size, kernel, stride, padding, output_padding, dilation, non-empty output.

    output_padding runs up to its limit, max(stride, dilation) - 1; padding up to what leaves one output.
    """
    k = draw(kernel_sizes)
    s = draw(st.integers(1, 4))
    d = draw(dilations)
    size = draw(st.integers(1, max_size))
    op = draw(st.integers(0, max(s, d) - 1))
    full = (size - 1) * s + d * (k - 1) + 1 + op
    p = draw(st.integers(0, min((full - 1) // 2, 4)))
    return {"size": size, "k": k, "s": s, "p": p, "op": op, "d": d}


@st.composite
def convt_cases(draw: st.DrawFn, layouts: list[str] | None = None) -> dict[str, Any]:
    """A whole case: shape + quantization + tensor values (+ a layout, when a list is given)."""
    h, w = draw(convt_axis()), draw(convt_axis())
    case = {
        "N": draw(batch()), **draw(channel_groups()),
        "H": h["size"], "W": w["size"], "KH": h["k"], "KW": w["k"],
        "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]], "output_padding": [h["op"], w["op"]],
        "dilation": [h["d"], w["d"]],
        **draw(quant_params()), "x_values": draw(value_modes), "w_values": draw(value_modes), "seed": draw(seeds),
    }
    if layouts:
        case["layout"] = draw(st.sampled_from(sorted(layouts)))
    return case
