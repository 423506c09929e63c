"""Hypothesis strategies of quantize / dequantize / round-trip cases, aimed at the edges.

Every strategy yields plain JSON-able dicts (checks.materialize says what the keys mean), so a shrunk
failure prints as a case that `python -m runtime.tools.repro` reruns exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runtime.oplib.strategies import seeds

# odd sizes and channel counts that are not multiples of 4, with a few exact multiples
sizes = st.one_of(st.integers(1, 11), st.sampled_from([4, 8, 16]))
channels = st.one_of(st.integers(1, 13), st.sampled_from([16, 17, 32]))
zp_modes = st.sampled_from(["random", "extremes"])
residencies = st.sampled_from(["array", "array", "packed", "device"])
# scale modes: "unit" 2^-10..2^7, "pow2" exact powers of two (exact .5 ties), "tiny" / "huge" near the ends
# of the accepted [2^-126, 2^120], "bounds" exactly those ends; "fp16" keeps float16 products normal
SCALE_MODES = {
    "quantize": {"float32": ["unit", "unit", "pow2", "pow2", "tiny", "huge", "bounds"],
                 "float16": ["unit", "unit", "pow2", "pow2", "fp16", "tiny", "huge"]},
    "dequantize": {"float32": ["unit", "unit", "pow2", "tiny", "huge", "bounds"],
                   "float16": ["unit", "unit", "pow2", "fp16", "tiny", "huge", "bounds"]},
    "roundtrip": {"float32": ["unit", "pow2", "tiny", "huge", "bounds"], "float16": ["fp16"]},
}
X_MODES = ["span", "span", "ties", "ties", "mixed", "huge", "subnormal", "zeros"]
Q_MODES = ["random", "random", "extremes", "min", "max"]


@st.composite
def quant_cases(draw: st.DrawFn, kind: str, layouts: list[str], dtype: str, quants: list[str]) -> dict[str, Any]:
    """One case of `kind` ("quantize", "dequantize" or "roundtrip") for a variant that serves
    `layouts`, float `dtype` and the quantization kinds `quants`."""
    case: dict[str, Any] = {
        "N": draw(st.sampled_from([1, 1, 2, 3])), "C": draw(channels), "H": draw(sizes), "W": draw(sizes),
        "layout": draw(st.sampled_from(sorted(layouts))), "quant": draw(st.sampled_from(quants)),
        "scale_mode": draw(st.sampled_from(SCALE_MODES[kind][dtype])), "zp_mode": draw(zp_modes),
        "seed": draw(seeds),
    }
    if kind == "quantize":
        case.update(values=draw(st.sampled_from(X_MODES)), residency=draw(residencies))
    elif kind == "dequantize":
        case.update(values=draw(st.sampled_from(Q_MODES)), residency=draw(residencies),
                    packed_out=draw(st.sampled_from([None, True, False])))
    else:
        case.update(values=draw(st.sampled_from(Q_MODES)))
    return case
