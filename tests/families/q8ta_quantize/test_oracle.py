"""The quantize / dequantize oracle against independent formulations, and its windows against the
values they must contain."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.families.q8ta_quantize import oracle


def _inputs(seed: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.exp2(rng.uniform(-12, 6, 3)).astype(np.float32)
    x = (rng.uniform(-300, 300, (2, 3, 4, 5)) * scale.reshape(1, 3, 1, 1)).astype(dtype)
    return x, scale, rng.integers(-128, 128, 3)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_quantize_matches_python_loops(dtype: str) -> None:
    """float32(float64(x) / float64(s)) is the correctly rounded float32 quotient (float64 carries more
    than 2 * 24 + 2 bits, so rounding twice is harmless), and Python's round() ties to even."""
    x, scale, zp = _inputs(1, dtype)
    got = oracle.quantize(x, scale, zp)
    for idx in np.ndindex(*x.shape):
        c = idx[1]
        v = float(np.float32(float(x[idx]) / float(scale[c])))
        assert got[idx] == min(127, max(-128, round(v) + int(zp[c]))), idx


def test_window_holds_the_oracle_and_opens_only_at_ties() -> None:
    x, scale, zp = _inputs(2, "float32")
    q = oracle.quantize(x, scale, zp)
    lo, hi = oracle.quantize_window(x, scale, zp)
    assert np.all((lo <= q) & (q <= hi)) and np.all(hi - lo.astype(int) <= 1)
    ties = (np.arange(-10, 10) + 0.5).astype(np.float32).reshape(1, 1, 1, -1)
    lo, hi = oracle.quantize_window(ties, 1.0, 0)
    assert np.all(hi.astype(int) - lo == 1), "an exact .5 tie may go either way on a device"
    subnormal = (np.array([0.75, -0.75], np.float32) * np.float32(2.0**-126)).reshape(1, 1, 1, 2)
    lo, hi = oracle.quantize_window(subnormal, 2.0**-126, 5)
    assert lo.tolist() == [[[[5, 4]]]] and hi.tolist() == [[[[6, 5]]]], "a flushed subnormal gives zp"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dequantize_neighbours_bracket_the_exact_product(dtype: str) -> None:
    rng = np.random.default_rng(3)
    q = rng.integers(-128, 128, (2, 3, 4, 5), dtype=np.int8)
    q[0, 2, 0, 0] = -128
    scale = np.array([1e-7, 0.013, 600.0], np.float32)
    exact = oracle.dequantize_exact(q, scale, 7)
    down, up, tiny = oracle.dequantize_neighbours(q, scale, 7, dtype)
    want = oracle.dequantize(q, scale, 7, dtype)
    assert np.all((down <= exact) & (exact <= up)) and np.all((want == down) | (want == up))
    assert np.all(tiny == ((exact != 0) & (np.abs(exact) < np.finfo(dtype).tiny)))
    assert dtype == "float32" or np.isinf(down[0, 2, 0, 0]), "600 * -135 is over float16's range: inf is a neighbour"
