"""The add / mul oracle against Python loops, and its window against the real-number definition."""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest

from runtime.families.q8ta_binary import oracle


def f32(v: float) -> float:
    """v rounded to the nearest float32 (struct rounds a double to nearest even)."""
    return float(struct.unpack("f", struct.pack("f", v))[0])


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float | int]]:
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (2, 3, 1, 5), dtype=np.int8)
    b = rng.integers(-128, 128, (1, 3, 4, 1), dtype=np.int8)
    kw = {"a_scale": float(rng.uniform(1e-3, 1)), "a_zp": int(rng.integers(-128, 128)),
          "b_scale": float(rng.uniform(1e-3, 1)), "b_zp": int(rng.integers(-128, 128)),
          "out_scale": float(rng.uniform(1e-3, 1)), "out_zp": int(rng.integers(-128, 128))}
    return a, b, kw


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("activation", ["none", "relu"])
def test_matches_python_loops(op: str, activation: str) -> None:
    """Each operation rounded to float32 one at a time (float64 then float32 rounds +, * of float32 values
    correctly: float64 has more than 2 * 24 + 2 bits)."""
    a, b, kw = _case(1)
    got = oracle.binary_q8(a, b, op, activation=activation, **kw)  # type: ignore[arg-type]
    sa, sb, so = f32(kw["a_scale"]), f32(kw["b_scale"]), f32(kw["out_scale"])
    ab = np.broadcast_arrays(a, b)
    for idx in np.ndindex(*got.shape):
        ia, ib = int(ab[0][idx]) - int(kw["a_zp"]), int(ab[1][idx]) - int(kw["b_zp"])
        if op == "add":
            v = f32(f32(ia * f32(sa / so)) + f32(ib * f32(sb / so)))
        else:
            v = f32((ia * ib) * f32(sa * sb / so))
        if activation == "relu":
            v = max(v, 0.0)
        assert got[idx] == min(127, max(-128, round(v) + int(kw["out_zp"]))), idx


@pytest.mark.parametrize("op", ["add", "mul"])
def test_window_holds_the_float32_and_the_exact_value(op: str) -> None:
    a, b, kw = _case(2)
    lo, hi = oracle.binary_window(a, b, op, **kw)  # type: ignore[arg-type]
    q = oracle.binary_q8(a, b, op, **kw)  # type: ignore[arg-type]
    assert np.all((lo <= q) & (q <= hi)) and np.all(hi.astype(int) - lo <= 1)
    # the exact rational result rounds inside the window too
    s = {k: Fraction(f32(float(v))) for k, v in kw.items() if k.endswith("scale")}
    ab = np.broadcast_arrays(a, b)
    for idx in list(np.ndindex(*q.shape))[:40]:
        ia, ib = int(ab[0][idx]) - int(kw["a_zp"]), int(ab[1][idx]) - int(kw["b_zp"])
        y = ia * s["a_scale"] + ib * s["b_scale"] if op == "add" else ia * s["a_scale"] * ib * s["b_scale"]
        exact = min(127, max(-128, round(y / s["out_scale"]) + int(kw["out_zp"])))
        assert lo[idx] <= exact <= hi[idx], idx


def test_multipliers_round_once_and_flush_tiny_ones() -> None:
    a, b, m = oracle.multipliers("add", 0.1, 1e-30, 1e10)
    assert a == f32(f32(0.1) / 1e10) and b == 0.0 and m == 0.0
    assert oracle.multipliers("mul", 0.5, 0.25, 2.0) == (0.0, 0.0, 0.0625)
