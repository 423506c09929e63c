"""Hypothesis strategies of q8_rowsum cases: shapes from one byte to rows past a workgroup, every
workgroup size, scales that wrap int32, extreme values."""

from __future__ import annotations

from hypothesis import strategies as st

from runtime.oplib.strategies import seeds

rowsum_cases = st.fixed_dictionaries({
    "rows": st.integers(1, 300),
    "cols": st.one_of(st.integers(1, 9), st.integers(1, 2000)),
    "workgroup": st.sampled_from([1, 2, 8, 32, 64, 256]),
    "scale": st.one_of(st.just(1), st.integers(-3, 3), st.sampled_from([2**31 - 1, -(2**31)])),
    "values": st.sampled_from(["random", "min", "max"]),
    "seed": seeds,
})
