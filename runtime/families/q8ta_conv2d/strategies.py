"""Hypothesis strategies of int8 conv cases: named, composable, and aimed at the edges.

Every strategy yields plain JSON-able dicts (checks.materialize says what the keys mean), so a
shrunk failure prints as a case that `python -m runtime.tools.repro` reruns exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import conv_shapes, quant_params, seeds, value_modes


@st.composite
def conv_cases(draw: st.DrawFn, layouts: list[str] | None = None) -> dict[str, Any]:
    """A whole case: shape + quantization + tensor values (+ a layout, when a list is given)."""
    case = {**draw(conv_shapes()), **draw(quant_params()),
            "x_values": draw(value_modes), "w_values": draw(value_modes), "seed": draw(seeds)}
    # im2col's kernel-row split (a CPU device never picks one itself): absent = the device's choice
    parts = draw(st.one_of(st.none(), st.integers(1, case["KH"] + 1)))
    if parts is not None:
        case["kh_parts"] = parts
    # im2col's stream path, where it fits (a CPU device never picks it itself): absent = the device's choice
    stream = draw(st.one_of(st.none(), st.booleans()))
    if stream is not None:
        case["stream"] = stream
    if layouts:
        case["layout"] = draw(st.sampled_from(sorted(layouts)))
    return case
