"""linear_q8: fixed cases on every GEMM variant, the public op, and agreement with conv2d_q8 (1x1 kernel).

The property tests (tests/test_properties.py) draw random cases through the level "linear" on every
GEMM variant; these pin the edges: K not a multiple of 4, sizes of 1, saturation at both ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_linear import oracle
from runtime.families.q8ta_linear.checks import materialize
from runtime.families.q8ta_linear.op import run_linear_q8
from runtime.oplib.q8_checks import requant_mismatch
from runtime.tools.check import check
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
GEMMS = MANIFEST.names(role="gemm")
BASE: dict[str, Any] = {
    "x_scale": 0.05, "w_scale_range": [0.001, 0.02], "out_scale_factor": 1.0, "bias": True, "bias_scale": 1.0,
    "activation": "none", "x_values": "random", "w_values": "random",
}
CASES = {
    # K % 4 == 3, partial row and channel blocks, relu
    "odd": dict(BASE, M=5, K=7, N=3, x_zp=-3, out_zp=4, activation="relu", seed=21),
    # everything 1: one row, one input, one output channel
    "ones": dict(BASE, M=1, K=1, N=1, x_zp=0, out_zp=0, seed=22),
    # sizes past a workgroup tile, K % 4 == 2, float32 bias large against the products
    "wide": dict(BASE, M=70, K=66, N=33, x_zp=127, out_zp=-128, bias_scale=50.0, seed=23),
    # saturation at both ends: extreme values, an out_scale that maps max|y| to 1.3
    "saturate": dict(BASE, M=9, K=13, N=6, x_zp=-128, out_zp=0, x_values="extremes", w_values="min",
                     out_scale_factor=0.01, seed=24),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", GEMMS)
def test_fixed_case(variant: str, case: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    check("linear", variant, CASES[case])


def test_public_op_picks_a_variant_and_matches_the_oracle() -> None:
    inp = materialize(dict(CASES["wide"], activation="relu"))
    out = runtime.linear_q8(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.kwargs)
    want, scaled, magnitude = oracle.linear_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.kwargs)
    assert out.dtype == np.int8 and out.shape == (70, 33)
    assert requant_mismatch(out, want, scaled, magnitude) is None


def test_k_padding_adds_nothing() -> None:
    """K = 5 pads 3 columns: with x_zp far from 0 a padding that leaked into the sums would show."""
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (8, 5), dtype=np.int8)
    w = rng.integers(-2, 3, (4, 5), dtype=np.int8)
    run = run_linear_q8(x, w, np.ones(4, np.float32), None, x_scale=1.0, x_zp=-100, out_scale=16.0, out_zp=0,
                        guard=True)
    want = np.clip(np.rint(oracle.linear_acc(x, w, -100) / 16.0), -128, 127)
    assert np.array_equal(run.output, want)
    assert run.geometry.K4 == 2


@pytest.mark.parametrize("gemm", [GEMMS[0], GEMMS[-1]])
def test_same_as_a_1x1_conv2d_on_the_same_gemm(gemm: str) -> None:
    """A linear layer is conv2d_q8 over (M, K, 1, 1) with a 1x1 kernel: the same GEMM variant gives
    the same bytes."""
    require_device_support(MANIFEST.variants[gemm])
    inp = materialize(dict(CASES["odd"], M=11, K=10, N=9, scale_dtype=MANIFEST.variants[gemm].axes["dtype"]))
    got = runtime.linear_q8(inp.x, inp.weight, inp.w_scales, inp.bias, variant=gemm, **inp.kwargs)
    conv = runtime.conv2d_q8(inp.x[:, :, None, None], inp.weight[:, :, None, None], inp.w_scales, inp.bias,
                             gemm_variant=gemm, **inp.kwargs)
    assert np.array_equal(got, conv[:, :, 0, 0])


def test_oracle_against_a_loop() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (3, 6), dtype=np.int8)
    w = rng.integers(-128, 128, (4, 6), dtype=np.int8)
    loops = [[sum((int(x[m, k]) - 7) * int(w[n, k]) for k in range(6)) for n in range(4)] for m in range(3)]
    assert np.array_equal(oracle.linear_acc(x, w, 7), np.array(loops))


def test_requant_comparison_allows_one_only_next_to_a_tie() -> None:
    """The +-1 of the requantized checks is confined to values within float32 reach of a rounding tie."""
    scaled = np.array([2.5, 2.5 + 1e-9, 2.3, -7.5, 100.0])
    magnitude = np.full(5, 10.0)  # band 10 * 2**-18 ~ 4e-5
    want = np.array([2, 3, 2, -8, 100], np.int8)
    assert requant_mismatch(want, want, scaled, magnitude) is None
    assert requant_mismatch(np.array([3, 2, 2, -7, 100], np.int8), want, scaled, magnitude) is None
    far = requant_mismatch(np.array([2, 3, 3, -8, 100], np.int8), want, scaled, magnitude)
    assert far is not None and "index (2,)" in far
    assert requant_mismatch(np.array([4, 3, 2, -8, 100], np.int8), want, scaled, magnitude) is not None
    # the band grows with the magnitude of the terms: 1e-3 from a tie is within reach of terms of 1e4,
    # not of terms of 100
    for magnitude_, allowed in ((1e4, True), (100.0, False)):
        problem = requant_mismatch(np.array([2], np.int8), np.array([3], np.int8), np.array([2.5 + 1e-3]),
                                   np.array([magnitude_]))
        assert (problem is None) == allowed
