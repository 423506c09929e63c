"""Tests of the q8ta_conv2d oracle against direct loops and hand-computed cases, and of the GEMM
weight and output formats (runtime/oplib/gemm_formats.py) it is independent of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.families.q8ta_conv2d.oracle import (
    conv2d_direct_loops,
    conv2d_q8_reference,
    conv_out_size,
    gemm_acc,
    im2col,
    normalize_pair,
    requantize,
    requantize_float,
)
from runtime.oplib.gemm_formats import matrix_to_nchw, nchw_to_matrix, weight_matrix
from runtime.oplib.gemm_formats import pack_weights_q8 as pack_weights
from runtime.oplib.gemm_formats import unpack_weights_q8 as unpack_weights

X3 = np.array([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], dtype=np.int8)  # (1, 1, 3, 3)
W2 = np.array([[[[1, 2], [3, 4]]]], dtype=np.int8)  # (1, 1, 2, 2)


@dataclass(frozen=True)
class Case:
    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    activation: str = "none"
    x_zp: int = 3
    out_zp: int = -5
    seed: int = 0


CASES = {
    "3x3_pad1": Case(1, 3, 5, 5, 4, 3, 3, padding=1),
    "n2_odd_hw_asym": Case(2, 5, 7, 6, 6, 3, 2, stride=(2, 1), padding=(1, 0)),
    "groups2": Case(1, 6, 5, 4, 4, 3, 3, padding=1, groups=2),
    "groups3_cg3": Case(2, 9, 5, 3, 6, 3, 3, padding=1, groups=3),
    "depthwise": Case(1, 5, 7, 7, 5, 3, 3, stride=2, padding=1, groups=5),
    "depthwise_mult2": Case(1, 3, 5, 6, 6, 3, 3, padding=1, groups=3),
    "stride_gt_kernel": Case(1, 2, 8, 8, 3, 2, 2, stride=3),
    "dilation2": Case(1, 3, 7, 7, 2, 3, 3, padding=2, dilation=2),
    "dilation_asym": Case(1, 4, 7, 6, 3, 3, 3, padding=(2, 1), dilation=(2, 1)),
    "padding_gt_kernel": Case(1, 2, 3, 3, 2, 2, 2, padding=3),
    "kernel_1x5": Case(1, 4, 3, 7, 2, 1, 5, padding=(0, 2)),
    "kernel_3x1_stride_asym": Case(1, 3, 7, 5, 2, 3, 1, stride=(1, 2), padding=(1, 0)),
    "pointwise_c9": Case(2, 9, 3, 3, 3, 1, 1),
    "kernel_covers_input": Case(1, 5, 3, 4, 2, 3, 4),
    "stem_c1_7x7": Case(1, 1, 9, 9, 4, 7, 7, stride=2, padding=3),
    "c_in_1_c_out_1": Case(1, 1, 4, 5, 1, 2, 3, padding=(1, 2)),
    "relu": Case(2, 3, 5, 5, 4, 3, 3, padding=1, activation="relu"),
    "zp_min": Case(1, 4, 5, 5, 3, 3, 3, padding=1, x_zp=-128, out_zp=-128),
    "zp_max": Case(1, 4, 5, 5, 3, 3, 3, padding=1, x_zp=127, out_zp=127),
    "zp_min_relu": Case(1, 3, 4, 4, 2, 3, 3, padding=2, x_zp=-128, out_zp=-128, activation="relu"),
    "zp_max_relu_groups": Case(1, 4, 4, 5, 4, 2, 2, padding=1, groups=2, x_zp=127, out_zp=127, activation="relu"),
}


def make_args(case: Case, spread: float = 40.0) -> tuple[tuple, dict]:
    """Random tensors and scales; out_scale puts typical outputs ~``spread`` steps apart."""
    rng = np.random.default_rng(case.seed + 1000 * case.c_in + case.c_out)
    x = rng.integers(-128, 128, size=(case.n, case.c_in, case.h, case.w), dtype=np.int8)
    cg = case.c_in // case.groups
    weight = rng.integers(-128, 128, size=(case.c_out, cg, case.kh, case.kw), dtype=np.int8)
    w_scales = rng.uniform(0.002, 0.02, size=case.c_out)
    bias = rng.normal(0.0, 2.0, size=case.c_out)
    x_scale = 0.05
    typical = 128 * 128 * np.sqrt(cg * case.kh * case.kw) * x_scale * w_scales.mean() / 3
    kwargs = {
        "x_scale": x_scale,
        "x_zp": case.x_zp,
        "out_scale": float(typical / spread),
        "out_zp": case.out_zp,
        "stride": case.stride,
        "padding": case.padding,
        "dilation": case.dilation,
        "groups": case.groups,
        "activation": case.activation,
    }
    return (x, weight, w_scales, bias), kwargs


def check_against_loops(case: Case, spread: float = 40.0) -> np.ndarray:
    args, kwargs = make_args(case, spread)
    q, v = conv2d_q8_reference(*args, **kwargs)
    expected = conv2d_direct_loops(*args, **kwargs)
    assert q.dtype == np.int8 and expected.dtype == np.int8
    assert q.shape == expected.shape
    np.testing.assert_array_equal(q, expected)
    # v is the exact pre-rounding value: q is v rounded, then saturated.
    assert v.dtype == np.float64 and v.shape == q.shape
    inside = (v >= -128) & (v <= 127)
    assert np.all(np.abs(q[inside] - v[inside]) <= 0.5)
    assert np.all(q[v < -128] == -128) and np.all(q[v > 127] == 127)
    return q


# --- reference vs direct loops ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_matches_direct_loops(name: str) -> None:
    case = CASES[name]
    q = check_against_loops(case)
    sh, sw = normalize_pair(case.stride, "stride")
    ph, pw = normalize_pair(case.padding, "padding")
    dh, dw = normalize_pair(case.dilation, "dilation")
    assert q.shape == (
        case.n,
        case.c_out,
        conv_out_size(case.h, case.kh, sh, ph, dh),
        conv_out_size(case.w, case.kw, sw, pw, dw),
    )
    if case.activation == "relu":
        assert np.all(q >= case.out_zp)


def test_saturation_matches_direct_loops() -> None:
    # A tiny out_scale pushes most outputs past the int8 range.
    q = check_against_loops(CASES["groups3_cg3"], spread=5000.0)
    assert (q == 127).any() and (q == -128).any()


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 2),
    groups=st.integers(1, 3),
    cg=st.integers(1, 5),
    ocg=st.integers(1, 3),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    activation=st.sampled_from(["none", "relu"]),
    x_zp=st.sampled_from([-128, -1, 0, 7, 127]),
    out_zp=st.sampled_from([-128, 0, 20, 127]),
)
def test_reference_matches_direct_loops_hypothesis(data, n, groups, cg, ocg, kh, kw, activation, x_zp, out_zp) -> None:
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    ph, pw = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    # The input must be big enough for at least one output position.
    h = data.draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 7))
    w = data.draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 7))
    case = Case(
        n, groups * cg, h, w, groups * ocg, kh, kw,
        stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups,
        activation=activation, x_zp=x_zp, out_zp=out_zp, seed=data.draw(st.integers(0, 99)),
    )  # fmt: skip
    check_against_loops(case)


# --- hand-computed examples ---------------------------------------------------------------


def test_hand_computed_valid_conv() -> None:
    # x - x_zp = [[0,1,2],[3,4,5],[6,7,8]], w = [[1,2],[3,4]]:
    # acc = 27, 37, 57, 67; y = acc*0.5*0.25 + 1 = 4.375, 5.625, 8.125, 9.375;
    # y/0.25 = 17.5, 22.5, 32.5, 37.5 -> ties to even 18, 22, 32, 38; + out_zp (-3).
    q, v = conv2d_q8_reference(
        X3, W2, np.array([0.25]), np.array([1.0]),
        x_scale=0.5, x_zp=1, out_scale=0.25, out_zp=-3,
    )  # fmt: skip
    assert q.tolist() == [[[[15, 19], [29, 35]]]]
    assert v.tolist() == [[[[14.5, 19.5], [29.5, 34.5]]]]
    direct = conv2d_direct_loops(
        X3, W2, np.array([0.25]), np.array([1.0]),
        x_scale=0.5, x_zp=1, out_scale=0.25, out_zp=-3,
    )  # fmt: skip
    assert direct.tolist() == q.tolist()


def test_hand_computed_padded_strided_conv() -> None:
    # padding 1, stride 2, x_zp 1: padded taps contribute (x_zp - x_zp) * w = 0.
    # (0,0): only x[0,0]=1 -> 0;           (0,1): (2-1)*3 + (3-1)*4 = 11;
    # (1,0): (4-1)*2 + (7-1)*4 = 30;       (1,1): 4*1 + 5*2 + 7*3 + 8*4 = 67.
    q, _ = conv2d_q8_reference(
        X3, W2, np.array([1.0]), None,
        x_scale=1.0, x_zp=1, out_scale=1.0, out_zp=0, stride=2, padding=1,
    )  # fmt: skip
    assert q.tolist() == [[[[0, 11], [30, 67]]]]


def test_hand_computed_im2col_and_weights() -> None:
    a, mask = im2col(X3, 2, 2, stride=1, padding=0, dilation=1, groups=1, x_zp=-7)
    assert a.shape == (1, 4, 16) and a.dtype == np.int8
    assert mask.tolist() == [True, False, False, False] * 4
    # Tap-major: column tap*4 holds the channel, columns tap*4+1..3 are padded slots (x_zp).
    assert a[0][:, mask].tolist() == [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]]
    assert np.all(a[0][:, ~mask] == -7)

    words, wsum = pack_weights(W2, groups=1)
    assert words.dtype == np.int32 and words.tolist() == [1, 2, 3, 4]
    assert wsum.dtype == np.int32 and wsum.tolist() == [10]
    assert gemm_acc(a, W2, groups=1)[0, :, 0].tolist() == [37, 47, 67, 77]


def test_im2col_padding_taps_hold_x_zp() -> None:
    a, mask = im2col(X3, 2, 2, stride=2, padding=1, dilation=1, groups=1, x_zp=-7)
    # Output (0,0) sees taps (-1,-1), (-1,0), (0,-1) in padding and x[0,0] = 1.
    assert a[0, 0, mask].tolist() == [-7, -7, -7, 1]
    assert a[0, 3, mask].tolist() == [5, 6, 8, 9]


def test_requantize_rounds_half_to_even_and_saturates() -> None:
    acc = np.array([[[1], [3], [5], [-1], [-3], [1000], [-1000]]])  # (G=1, M=7, OCg=1)
    q = requantize(acc, 0.5, np.array([1.0]), None, 1.0, 0)  # y = 0.5, 1.5, ...
    assert q.ravel().tolist() == [0, 2, 2, 0, -2, 127, -128]
    q = requantize(acc, 0.5, np.array([1.0]), None, 1.0, 10, activation="relu")
    assert q.ravel().tolist() == [10, 12, 12, 10, 10, 127, 10]


# --- pieces of the GEMM -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c_out", "cg", "kh", "kw", "groups"), [(4, 3, 3, 3, 1), (6, 5, 2, 3, 2), (3, 1, 3, 3, 3), (8, 4, 1, 1, 4)]
)
def test_pack_weights_matches_explicit_index(c_out, cg, kh, kw, groups) -> None:
    rng = np.random.default_rng(c_out * cg)
    weight = rng.integers(-128, 128, size=(c_out, cg, kh, kw), dtype=np.int8)
    words, wsum = pack_weights(weight, groups)
    ocg, cg4 = c_out // groups, -(-cg // 4)
    k4 = kh * kw * cg4
    assert words.shape == (groups * k4 * ocg,)
    buf = words.view(np.uint8)
    for g in range(groups):
        for k in range(k4 * 4):
            tap, c = divmod(k, cg4 * 4)
            for oc in range(ocg):
                expected = weight[g * ocg + oc, c, tap // kw, tap % kw] if c < cg else 0
                byte = buf[((g * k4 + k // 4) * ocg + oc) * 4 + k % 4]
                assert np.int8(np.uint8(byte)) == expected
    np.testing.assert_array_equal(wsum, weight.astype(np.int64).sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(unpack_weights(words, groups, k4 * 4, ocg), weight_matrix(weight, groups))


def test_gemm_ignores_padded_channel_slots() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(2, 6, 5, 4), dtype=np.int8)
    weight = rng.integers(-128, 128, size=(4, 3, 3, 3), dtype=np.int8)
    a, mask = im2col(x, 3, 3, 1, 1, 1, groups=2, x_zp=0)
    garbage = a.copy()
    garbage[:, :, ~mask] = rng.integers(-128, 128, size=garbage[:, :, ~mask].shape)
    np.testing.assert_array_equal(gemm_acc(a, weight, 2), gemm_acc(garbage, weight, 2))


def test_gemm_acc_equals_zero_point_sum() -> None:
    # sum_k a*w - x_zp*wsum equals the sum of (x - x_zp)*w over real taps only.
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, size=(1, 5, 4, 4), dtype=np.int8)
    weight = rng.integers(-128, 128, size=(3, 5, 3, 3), dtype=np.int8)
    a, mask = im2col(x, 3, 3, 1, 1, 1, groups=1, x_zp=-9)
    _, wsum = pack_weights(weight, 1)
    acc = gemm_acc(a, weight, 1) + 9 * wsum.astype(np.int64)
    shifted = (a[:, :, mask].astype(np.int64) + 9) @ weight_matrix(weight, 1)[:, mask, :]
    np.testing.assert_array_equal(acc, shifted)


def test_requantize_matrix_and_nchw_shapes_agree() -> None:
    rng = np.random.default_rng(5)
    acc = rng.integers(-20000, 20000, size=(3, 2 * 4 * 5, 2))  # G=3, N=2, Ho=4, Wo=5, OCg=2
    w_scales, bias = rng.uniform(0.01, 0.02, 6), rng.normal(0, 1, 6)
    args = (0.1, w_scales, bias, 0.5, 4)
    q_mat = requantize(acc, *args, activation="relu")
    q_nchw = requantize(matrix_to_nchw(acc, 2, 4, 5), *args, activation="relu")
    np.testing.assert_array_equal(matrix_to_nchw(q_mat, 2, 4, 5), q_nchw)
    np.testing.assert_array_equal(nchw_to_matrix(matrix_to_nchw(acc, 2, 4, 5), 3), acc)
    v = requantize_float(acc, *args)
    assert v.shape == acc.shape and v.dtype == np.float64


def test_float16_scales_and_bias() -> None:
    args, kwargs = make_args(CASES["groups2"])
    x, weight, w_scales, bias = args
    w16, b16 = w_scales.astype(np.float16), bias.astype(np.float16)
    q16, v16 = conv2d_q8_reference(x, weight, w16, b16, **kwargs)
    q64, v64 = conv2d_q8_reference(x, weight, w16.astype(np.float64), b16.astype(np.float64), **kwargs)
    np.testing.assert_array_equal(q16, q64)
    np.testing.assert_array_equal(v16, v64)
    np.testing.assert_array_equal(q16, conv2d_direct_loops(x, weight, w16, b16, **kwargs))


# --- argument handling --------------------------------------------------------------------


def test_conv_out_size() -> None:
    assert conv_out_size(5, 3, 1, 1, 1) == 5
    assert conv_out_size(7, 3, 2, 1, 1) == 4
    assert conv_out_size(7, 3, 1, 0, 2) == 3
    assert conv_out_size(3, 2, 1, 3, 1) == 8
    assert conv_out_size(8, 2, 3, 0, 1) == 3
    with pytest.raises(ValueError, match="does not fit"):
        conv_out_size(2, 5, 1, 0, 1)


def test_normalize_pair() -> None:
    assert normalize_pair(3, "stride") == (3, 3)
    assert normalize_pair((1, 2), "stride") == (1, 2)
    assert normalize_pair([0, np.int64(4)], "padding") == (0, 4)
    for bad in [(1, 2, 3), "2", 1.5, (1.0, 2), None, True]:
        with pytest.raises(ValueError, match="dilation") as info:
            normalize_pair(bad, "dilation")
        assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match="stride"):
        normalize_pair(0, "stride", min_value=1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"groups": 4}, "divisible"),
        ({"activation": "gelu"}, "activation"),
        ({"x_zp": 128}, "x_zp"),
        ({"out_zp": -129}, "out_zp"),
        ({"stride": 0}, "stride"),
        ({"padding": -1}, "padding"),
        ({"out_scale": 0.0}, "out_scale"),
    ],
)
def test_reference_rejects_bad_arguments(change: dict, match: str) -> None:
    args, kwargs = make_args(CASES["groups2"])
    with pytest.raises(ValueError, match=match):
        conv2d_q8_reference(*args, **{**kwargs, **change})


def test_reference_rejects_weight_channel_mismatch() -> None:
    args, kwargs = make_args(CASES["3x3_pad1"])
    x, weight, w_scales, bias = args
    with pytest.raises(ValueError, match="input channels"):
        conv2d_q8_reference(x, weight[:, :2], w_scales, bias, **kwargs)
