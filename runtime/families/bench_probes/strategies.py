"""Hypothesis strategies of the bench probes' cases: fewer workgroups than elements exercises the
copy's stride loop; "extremes" seeds drive the dot chains into saturation / wrap-around; the coopmat
peak's operands are always full-range random (its loop cannot overflow)."""

from __future__ import annotations

from hypothesis import strategies as st

from runtime.oplib.strategies import seeds

bench_copy_cases = st.fixed_dictionaries(
    {"n": st.integers(1, 3000), "groups": st.integers(1, 64), "tail": st.integers(0, 8), "seed": seeds}
)
bench_dot_peak_cases = st.fixed_dictionaries(
    {"groups": st.integers(1, 4), "iters": st.integers(0, 40), "values": st.sampled_from(["random", "extremes"]),
     "seed": seeds}
)
bench_coopmat_peak_cases = st.fixed_dictionaries(
    {"groups": st.integers(1, 4), "iters": st.integers(0, 40), "seed": seeds}
)
