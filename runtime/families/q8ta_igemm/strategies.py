"""Hypothesis strategies of int8 conv cases for the implicit-GEMM variants, aimed at the edges.

Most cases come from the shared conv strategy (runtime/oplib/strategies.py: dense, grouped and
depthwise splits with channel counts that are not multiples of 4, odd sizes, kernels wider than the
input reached through padding, per-axis stride and dilation); one in four is a *wide* case, with
channels per group a multiple of 32 (the staged loader's one-tap K steps), several K steps, and
output channels over several workgroup tiles. Variants that can split K also draw `split_k`.
Inside a coverage cell (runtime/oplib/cells.py) the shared blocks force the cell's class; wide shapes
take part where they can belong to it. Every case is a plain JSON-able dict (checks.materialize says
what the keys mean).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import batch, conv_shapes, forced_class, quant_params, seeds, value_modes

# coverage classes (runtime/oplib/cells.py) no wide shape belongs to: while one is forced, wide shapes
# would only be filtered out again
NOT_WIDE = ("depthwise", "cin_tail", "k_tail")


@st.composite
def wide_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Channels per group a multiple of 32 (so a K step of 8 words stays in one tap), 1x1 or 3x3 kernels
    (any stride, dilation along H), and up to 136 output channels per group."""
    groups = draw(st.sampled_from([1, 1, 2]))
    k = draw(st.sampled_from([1, 3, 3]))
    size_h, size_w = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    stride = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    dil_h = draw(st.sampled_from([1, 2])) if k == 3 else 1
    pad = [draw(st.integers(max(0, -(-(dil_h * (k - 1) + 1 - size_h) // 2)), k)),
           draw(st.integers(max(0, -(-(k - size_w) // 2)), k))]
    return {
        "N": draw(batch()), "groups": groups,
        "C_in": groups * draw(st.sampled_from([32, 64])), "C_out": groups * draw(st.sampled_from([8, 72, 136])),
        "H": size_h, "W": size_w, "KH": k, "KW": k,
        "stride": stride, "padding": pad, "dilation": [dil_h, 1],
    }


@st.composite
def igemm_cases(draw: st.DrawFn, layouts: list[str], splits: bool = False) -> dict[str, Any]:
    """A whole case: shape + quantization + tensor values + the input layout (+ split_k where `splits`)."""
    wide = forced_class() not in NOT_WIDE and draw(st.integers(0, 3)) == 0
    shape = draw(wide_shapes()) if wide else draw(conv_shapes())
    case = {**shape, **draw(quant_params()), "x_values": draw(value_modes), "w_values": draw(value_modes),
            "seed": draw(seeds), "layout": draw(st.sampled_from(sorted(layouts)))}
    if splits:
        case["split_k"] = draw(st.sampled_from([None, None, 2, 3, 7]))
    return case
