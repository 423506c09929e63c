"""conv_transpose2d_q8: fixed cases on every variant x layout, the adjoint of conv2d, the oracle's two forms.

The property tests (tests/test_properties.py) draw random cases through the level "convt"; these pin
the edges, and tie the semantics to conv2d_q8 with no PyTorch: conv_transpose2d is the adjoint of
conv2d with the same weight, so sum(conv2d(x) * y) == sum(x * conv_transpose2d(y)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference
from runtime.families.q8ta_convt import oracle
from runtime.families.q8ta_convt.checks import accepted_layouts, materialize
from runtime.families.q8ta_convt.op import run_conv_transpose2d_q8
from runtime.oplib.q8_checks import requant_mismatch
from runtime.tools.check import check
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
VARIANTS = MANIFEST.names(role="convt")
BASE: dict[str, Any] = {
    "x_scale": 0.05, "w_scale_range": [0.001, 0.02], "out_scale_factor": 1.0, "bias": True, "bias_scale": 1.0,
    "activation": "none", "x_values": "random", "w_values": "random",
}
CASES = {
    # the usual upsampler: stride 2, kernel 4, padding 1; odd sizes, channels not multiples of 4, batch 2
    "upsample": dict(BASE, N=2, C_in=5, C_out=7, H=5, W=6, KH=4, KW=4, stride=[2, 2], padding=[1, 1],
                     output_padding=[0, 0], dilation=[1, 1], groups=1, x_zp=-3, out_zp=4, seed=31),
    # per-axis stride with output_padding (rows past the uncropped extent), dilation, 3 groups, relu
    "grouped": dict(BASE, N=1, C_in=6, C_out=9, H=4, W=7, KH=3, KW=2, stride=[3, 2], padding=[0, 2],
                    output_padding=[2, 1], dilation=[1, 2], groups=3, x_zp=127, out_zp=-128, activation="relu",
                    seed=32),
    # depthwise, stride larger than the kernel (outputs no tap reaches), extremes, saturating out_scale
    "holes": dict(BASE, N=1, C_in=8, C_out=8, H=3, W=3, KH=1, KW=2, stride=[4, 3], padding=[0, 0],
                  output_padding=[3, 0], dilation=[1, 1], groups=8, x_zp=-128, out_zp=0, x_values="extremes",
                  out_scale_factor=0.3, seed=33),
    # padding that crops most of the output, output_padding from dilation > stride, 1x1 input
    "crop": dict(BASE, N=3, C_in=3, C_out=5, H=1, W=1, KH=5, KW=3, stride=[1, 1], padding=[2, 1],
                 output_padding=[1, 0], dilation=[2, 1], groups=1, x_zp=0, out_zp=-7, w_values="max", seed=34),
}


def _params() -> list[Any]:
    return [pytest.param(v, layout, case, id=f"{v}-{layout}-{case}")
            for v in VARIANTS for layout in accepted_layouts(MANIFEST.variants[v], MANIFEST) for case in CASES]


@pytest.mark.parametrize(("variant", "layout", "case"), _params())
def test_fixed_case(variant: str, layout: str, case: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    check("convt", variant, dict(CASES[case], layout=layout))


def test_every_int8_layout_is_read_by_some_variant() -> None:
    read = {layout for v in VARIANTS for layout in accepted_layouts(MANIFEST.variants[v], MANIFEST)}
    assert read == set(MANIFEST.layouts)


def test_public_op_and_packed_input() -> None:
    """The op picks a variant itself, for an array and for a tensor already packed in another layout."""
    inp = materialize(CASES["upsample"])
    want, scaled, magnitude = oracle.conv_transpose2d_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias,
                                                                   **inp.quant, **inp.conv)
    assert want.shape == (2, 7, 10, 12)
    for x in (inp.x, runtime.pack(inp.x, "4c")):
        out = runtime.conv_transpose2d_q8(x, inp.weight, inp.w_scales, inp.bias, **inp.quant, **inp.conv)
        assert out.dtype == np.int8
        assert requant_mismatch(out, want, scaled, magnitude) is None


# --- conv_transpose2d is the adjoint of conv2d -------------------------------------------------------

ADJOINT = [
    # (N, C_in of the conv, C_out of the conv, H, W, KH, KW, stride, padding, dilation, groups)
    (1, 3, 2, 7, 6, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    (2, 4, 4, 5, 9, 2, 3, (1, 3), (0, 2), (2, 1), 2),
    (1, 3, 3, 8, 5, 3, 1, (3, 1), (2, 0), (1, 1), 3),
    (1, 2, 5, 6, 6, 4, 4, (2, 2), (1, 1), (1, 1), 1),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", ADJOINT, ids=[f"adj{i}" for i in range(len(ADJOINT))])
def test_adjoint_of_conv2d_on_the_device(variant: str, shape: tuple[Any, ...]) -> None:
    """sum(conv2d(x) * y) == sum(x * conv_transpose2d(y)) with the same weight, both ops on the device
    through identity requantization (values in -1 .. 1, so every accumulator is exact in int8), the
    output_padding the one that gives conv_transpose2d x's shape."""
    require_device_support(MANIFEST.variants[variant])
    n, c_in, c_out, h, w, kh, kw, stride, padding, dilation, groups = shape
    rng = np.random.default_rng(ADJOINT.index(shape))
    x = rng.integers(-1, 2, (n, c_in, h, w), dtype=np.int8)
    weight = rng.integers(-1, 2, (c_out, c_in // groups, kh, kw), dtype=np.int8)
    identity = dict(x_scale=1.0, x_zp=0, out_scale=1.0, out_zp=0)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    cx = runtime.conv2d_q8(x, weight, np.ones(c_out, np.float32), None, **identity, **conv)
    y = rng.integers(-1, 2, cx.shape, dtype=np.int8)
    out_pad = tuple(size - oracle.out_size(cx.shape[2 + i], (kh, kw)[i], stride[i], padding[i], 0, dilation[i])
                    for i, size in enumerate((h, w)))
    ty = run_conv_transpose2d_q8(y, weight, np.ones(c_in, np.float32), None, output_padding=out_pad,
                                 variant=variant, input_layout=accepted_layouts(MANIFEST.variants[variant],
                                                                                MANIFEST)[0],
                                 guard=True, **identity, **conv).output
    assert ty.shape == x.shape
    assert np.abs(cx).max() < 127 and np.abs(ty).max() < 127, "accumulators saturated: the relation would not hold"
    lhs = int(np.sum(cx.astype(np.int64) * y))
    rhs = int(np.sum(x.astype(np.int64) * ty))
    assert lhs == rhs


@pytest.mark.parametrize("seed", range(6))
def test_oracle_is_the_adjoint_of_the_conv2d_oracle(seed: int) -> None:
    """The same relation on the two NumPy oracles, int64, full int8 range and a zero point."""
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 3))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s, d, p = (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (1, int(rng.integers(1, 3))), (1, 0)
    x = rng.integers(-128, 128, (2, c_in, 9, 8), dtype=np.int8)
    weight = rng.integers(-128, 128, (c_out, c_in // groups, *k), dtype=np.int8)
    conv = dict(stride=s, padding=p, dilation=d, groups=groups)
    # the conv oracle's pre-rounding value through identity requantization is its accumulator, exactly
    _, cx = conv2d_q8_reference(x, weight, np.ones(c_out), None, x_scale=1.0, x_zp=0, out_scale=1.0, out_zp=0,
                                **conv)
    y = rng.integers(-128, 128, cx.shape, dtype=np.int64)
    out_pad = tuple(size - oracle.out_size(cx.shape[2 + i], k[i], s[i], p[i], 0, d[i]) for i, size in enumerate((9, 8)))
    ty = oracle.convt_acc(y, weight, x_zp=0, output_padding=out_pad, **conv)
    assert int(np.sum(cx.astype(np.int64) * y)) == int(np.sum(x.astype(np.int64) * ty))
    # and a zero point is a shift of y: convt(y - zp) = convt(y) - convt(zp everywhere)
    shifted = oracle.convt_acc(y + 5, weight, x_zp=5, output_padding=out_pad, **conv)
    assert np.array_equal(shifted, ty)


@pytest.mark.parametrize("seed", range(8))
def test_scatter_oracle_equals_loop_gather(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    groups = int(rng.integers(1, 3))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    op = tuple(int(rng.integers(0, max(s[i], d[i]))) for i in range(2))
    x = rng.integers(-128, 128, (2, groups * 2, 4, 3), dtype=np.int8)
    weight = rng.integers(-128, 128, (groups * 2, 3, *k), dtype=np.int8)
    conv = dict(x_zp=int(rng.integers(-128, 128)), stride=s, padding=(1, 0), output_padding=op, dilation=d,
                groups=groups)
    assert np.array_equal(oracle.convt_acc(x, weight, **conv), oracle.convt_acc_loops(x, weight, **conv))


def test_output_size_follows_pytorch() -> None:
    # torch.nn.ConvTranspose2d(…, kernel_size=3, stride=2, padding=1, output_padding=1) doubles 5 to 10
    x = np.zeros((1, 1, 5, 5), np.int8)
    out = runtime.conv_transpose2d_q8(x, np.ones((1, 2, 3, 3), np.int8), np.ones(2, np.float32), None, x_scale=1.0,
                                      x_zp=0, out_scale=1.0, out_zp=0, stride=2, padding=1, output_padding=1)
    assert out.shape == (1, 2, 10, 10)
