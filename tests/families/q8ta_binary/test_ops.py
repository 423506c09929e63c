"""runtime.add_q8 / runtime.mul_q8 as a user calls them: values by hand, broadcasting (b and a), the
variant picked, results kept on the device and chained with quantize / dequantize, and a check that
does fail on a wrong result."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import default_device
from runtime.core.packed import Packed, pack
from runtime.core.registry import VerificationError
from runtime.families.q8ta_binary import checks, oracle
from runtime.families.q8ta_binary.op import BinaryRun, run_binary
from runtime.families.q8ta_quantize import oracle as quant_oracle

Q = {"a_scale": 0.5, "a_zp": 0, "b_scale": 0.25, "b_zp": 0, "out_scale": 1.0, "out_zp": 0}


def _t(values: list[int]) -> np.ndarray:
    return np.array(values, np.int8).reshape(1, 1, 1, -1)


def test_values_by_hand() -> None:
    a, b = _t([2, 3, 5, -7, 127, -128]), _t([2, 2, -2, 6, 127, -128])
    # 0.5 a + 0.25 b: 1.5 -> 2, 2 -> 2, 2 -> 2, -2 -> -2, 95.25 -> 95, -96 -> -96
    assert runtime.add_q8(a, b, **Q).ravel().tolist() == [2, 2, 2, -2, 95, -96]
    # 0.125 a b: 0.5 -> 0, 0.75 -> 1, -1.25 -> -1, -5.25 -> -5, 2016.1 -> 127, 2048 -> 127
    assert runtime.mul_q8(a, b, **Q).ravel().tolist() == [0, 1, -1, -5, 127, 127]
    assert runtime.add_q8(a, b, **Q, activation="relu").ravel().tolist() == [2, 2, 2, 0, 95, 0]
    # zero points come off before scaling and go back on after rounding
    shifted = {**Q, "a_zp": 1, "b_zp": -1, "out_zp": 10}
    # 0.5 [1, 2, 4, -8, 126, -129] + 0.25 [3, 3, -1, 7, 128, -127] = [1.25, 1.75, 1.75, -2.25, 95, -96.25]
    assert runtime.add_q8(a, b, **shifted).ravel().tolist() == [11, 12, 12, 8, 105, -86]


def test_broadcasting_both_ways_and_the_variant_picked() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (2, 5, 3, 7), dtype=np.int8)
    kw: dict[str, Any] = {**Q, "out_scale": 0.7, "out_zp": -3}
    for b_shape in [(2, 5, 3, 7), (1, 5, 1, 1), (1, 1, 1, 1), (2, 1, 3, 1), (1, 1, 1, 7)]:
        b = rng.integers(-128, 128, b_shape, dtype=np.int8)
        run = run_binary("mul", a, b, layout="4c", **kw)
        assert np.array_equal(run.result, oracle.binary_q8(a, b, "mul", **kw)), b_shape
        specialized = b_shape in [(2, 5, 3, 7), (1, 5, 1, 1), (1, 1, 1, 1)]
        assert ("_4c_" in run.variant) == specialized, (b_shape, run.variant)
    # a broadcasts too: (1, 5, 1, 7) + (2, 1, 3, 1) -> (2, 5, 3, 7), laid out like a
    a_small, b_small = a[:1, :, :1, :], rng.integers(-128, 128, (2, 1, 3, 1), dtype=np.int8)
    got = runtime.add_q8(pack(a_small, "4c1w"), b_small, **kw, packed=True)
    assert isinstance(got, Packed) and got.layout.name == "4c1w" and got.shape == (2, 5, 3, 7)
    assert np.array_equal(got.numpy(), oracle.binary_q8(a_small, b_small, "add", **kw))


def test_chain_on_the_device() -> None:
    """quantize -> add (residual) -> mul (per-channel gate) -> dequantize with every intermediate packed
    on the device, against the chain of oracles."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 5, 7)).astype(np.float32)
    r = rng.integers(-128, 128, (1, 6, 5, 7), dtype=np.int8)
    gate = rng.integers(0, 128, (1, 6, 1, 1), dtype=np.int8)
    q = runtime.quantize(pack(x, "contig").to_device(), 0.02, 5)
    summed = runtime.add_q8(q, pack(r, "4w4c").to_device(), a_scale=0.02, a_zp=5, b_scale=0.03, b_zp=-2,
                            out_scale=0.04, out_zp=1, activation="relu")
    gated = runtime.mul_q8(summed, gate, a_scale=0.04, a_zp=1, b_scale=1 / 127, b_zp=0, out_scale=0.03, out_zp=0)
    y = runtime.dequantize(gated, 0.03, 0)
    assert all(isinstance(t, Packed) and t.on_device for t in (q, summed, gated, y))
    want_q = quant_oracle.quantize(x, 0.02, 5)
    want_sum = oracle.binary_q8(want_q, r, "add", a_scale=0.02, a_zp=5, b_scale=0.03, b_zp=-2, out_scale=0.04,
                                out_zp=1, activation="relu")
    want_gated = oracle.binary_q8(want_sum, gate, "mul", a_scale=0.04, a_zp=1, b_scale=1 / 127, b_zp=0,
                                  out_scale=0.03, out_zp=0)
    assert np.array_equal(y.numpy(), quant_oracle.dequantize(want_gated, 0.03, 0))


def _case(**changes: Any) -> dict[str, Any]:
    base = dict(N=1, C=6, H=3, W=5, broadcast="same", a_layout="4w4c", b_layout="4w4c", a_residency="array",
                b_residency="array", packed_out=None, a_values="random", b_values="random", a_scale=0.05,
                b_scale=0.02, a_zp=3, b_zp=-7, out_scale_factor=1.0, out_zp=1, activation="none", seed=9)
    return {**base, **changes}


def test_the_check_fails_on_an_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.run_binary

    def off_by_one(*args: Any, **kwargs: Any) -> BinaryRun:
        run = real(*args, **kwargs)
        q = np.asarray(run.result).copy()
        q[0, 4, 2, 1] = q[0, 4, 2, 1] + (1 if q[0, 4, 2, 1] < 127 else -1)
        return BinaryRun(q, run.variant)

    monkeypatch.setattr(checks, "run_binary", off_by_one)
    with pytest.raises(VerificationError, match=r"1 of 90 elements wrong; first at \(0, 4, 2, 1\)"):
        checks.check_binary("q8ta_binary_wg64_4w4c_add", _case(), None)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("layout", ["4w4c", "contig"])
def test_every_pair_of_int8_values(op: str, layout: str) -> None:
    """All 65536 (a, b) pairs, with power-of-two scales that make many results exact .5 ties: inside the
    derived windows everywhere, and on lavapipe (round to nearest) the oracle's value everywhere."""
    grid = np.arange(-128, 128, dtype=np.int8)
    a = np.broadcast_to(grid.reshape(1, 1, 256, 1), (1, 1, 256, 256)).copy()
    b = np.broadcast_to(grid.reshape(1, 1, 1, 256), (1, 1, 256, 256)).copy()
    kw: dict[str, Any] = {"a_scale": 0.5, "a_zp": -3, "b_scale": 0.25, "b_zp": 7,
                          "out_scale": 2.0 if op == "add" else 16.0, "out_zp": 2}
    got = runtime.add_q8(a, b, **kw, layout=layout) if op == "add" else runtime.mul_q8(a, b, **kw, layout=layout)
    lo, hi = oracle.binary_window(a, b, op, **kw)
    assert np.count_nonzero(lo != hi) > 400, "the scales were meant to make .5 ties"
    assert np.all((lo <= got) & (got <= hi))
    if "llvmpipe" in default_device().info.name:
        assert np.array_equal(got, oracle.binary_q8(a, b, op, **kw))
