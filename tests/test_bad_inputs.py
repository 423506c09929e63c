"""Bad input to the public ops is refused with a typed error naming the argument and the value,
before anything reaches the GPU.

ONE table: each row takes a valid baseline call, changes one thing, and says which exception
(ValueError or TypeError; LimitExceededError is a ValueError) and which words the message must hold.
While a row runs, the default device's run/alloc/upload/pipeline fail the test if called, and host
allocations are traced, so a rejected call neither submits work nor packs a huge tensor first.

Rows cover ``runtime.conv2d_q8``, ``runtime.conv2d_float`` and opening a ``runtime.Device`` (op
"device": its selector, ``$SHADERKIT_DEVICE`` and ``mask_features``, refused before any Vulkan call).
"""

from __future__ import annotations

import math
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core import context
from runtime.core.device import Device, default_device
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.op import MAX_K
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference

Kwargs = dict[str, Any]


CONV2D_FLOAT = runtime.conv2d_float
OPS = ("q8", "float", "device")
# a rejected call may allocate small things on the host, never a copy of a big (broadcast) tensor
MAX_HOST_PEAK = 16 << 20


def _rng() -> np.random.Generator:
    return np.random.default_rng(9)


def baseline_q8() -> Kwargs:
    """A valid call: dense 3x3 conv, 8 -> 4 channels, 6x6 input."""
    rng = _rng()
    return {
        "x": rng.integers(-128, 128, (1, 8, 6, 6), dtype=np.int8),
        "weight": rng.integers(-128, 128, (4, 8, 3, 3), dtype=np.int8),
        "w_scales": np.full(4, 0.01, np.float32),
        "bias": np.zeros(4, np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2,
    }


def baseline_float() -> Kwargs:
    rng = _rng()
    return {
        "x": rng.standard_normal((1, 8, 6, 6)).astype(np.float32),
        "weight": rng.standard_normal((4, 8, 3, 3)).astype(np.float32),
        "bias": np.zeros(4, np.float32),
    }


def baseline_device() -> Kwargs:
    """A valid Device(): the preferred device, nothing masked, $SHADERKIT_DEVICE unset."""
    return {"env": None}


@contextmanager
def device_env(value: str | None) -> Iterator[None]:
    """$SHADERKIT_DEVICE set to `value` (None: unset) for the duration."""
    old = os.environ.pop(context.ENV_SELECTOR, None)
    if value is not None:
        os.environ[context.ENV_SELECTOR] = value
    try:
        yield
    finally:
        os.environ.pop(context.ENV_SELECTOR, None)
        if old is not None:
            os.environ[context.ENV_SELECTOR] = old


def open_device(env: str | None = None, **kwargs: Any) -> Device:
    """The "device" op: Device(**kwargs) with $SHADERKIT_DEVICE = `env`."""
    with device_env(env):
        return Device(**kwargs)


def limit() -> int:
    return int(default_device().info.limits["maxStorageBufferRange"])


def zeros(shape: tuple[int, ...], dtype: Any = np.int8) -> np.ndarray:
    """A read-only zero tensor of any logical size backed by one element (no big allocation)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def per_channel(c_out: int, value: float = 0.01) -> Kwargs:
    return {"w_scales": np.full(c_out, value, np.float32), "bias": np.zeros(c_out, np.float32)}


def set_(**changes: Any) -> Callable[[Kwargs], Kwargs]:
    """Builder: the baseline with some arguments replaced."""
    return lambda kw: {**kw, **changes}


def entry(name: str, index: Any, value: Any) -> Callable[[Kwargs], Kwargs]:
    """Builder: the baseline with one entry of an array argument replaced."""
    def build(kw: Kwargs) -> Kwargs:
        arr = kw[name].copy()
        arr[index] = value
        return {**kw, name: arr}
    return build


def cast(name: str, dtype: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, name: kw[name].astype(dtype)}


def reshape(name: str, shape: tuple[int, ...]) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, name: kw[name].reshape(shape)}


# -- sizes that go over maxStorageBufferRange, derived from the device's limit -----------------------
def im2col_too_big(kw: Kwargs) -> Kwargs:
    # 13x13 kernel, padding 6 on 4 channels: the im2col matrix is ~676 bytes per output pixel
    side = math.isqrt(limit() // 676) + 16
    return {**kw, "x": zeros((1, 4, side, side)), "weight": zeros((4, 4, 13, 13)), "padding": 6}


def x_too_big(kw: Kwargs) -> Kwargs:
    side = math.isqrt(limit() // 8) + 16
    return {**kw, "x": zeros((1, 8, side, side)), "weight": zeros((4, 8, 1, 1))}


def output_too_big(kw: Kwargs) -> Kwargs:
    # 1x1 kernel, 4 -> 64 channels: 64 output bytes per pixel, 4 per pixel for x and im2col
    side = math.isqrt(limit() // 64) + 16
    return {**kw, "x": zeros((1, 4, side, side)), "weight": zeros((64, 4, 1, 1)), **per_channel(64)}


def weight_too_big(kw: Kwargs) -> Kwargs:
    c_in = 16384  # reduction length 16384 < MAX_K
    c_out = limit() // c_in + 8
    return {**kw, "x": zeros((1, c_in, 1, 1)), "weight": zeros((c_out, c_in, 1, 1)), **per_channel(c_out)}


def float_im2col_too_big(kw: Kwargs) -> Kwargs:
    side = math.isqrt(limit() // (4 * 676)) + 16  # 4-byte elements
    return {**kw, "x": zeros((1, 4, side, side), np.float32), "weight": zeros((4, 4, 13, 13), np.float32),
            "padding": 6}


def float_x_too_big(kw: Kwargs) -> Kwargs:
    side = math.isqrt(limit() // 32) + 16
    return {**kw, "x": zeros((1, 8, side, side), np.float32), "weight": zeros((4, 8, 1, 1), np.float32)}


def reduction_too_long(kw: Kwargs) -> Kwargs:
    c_in = MAX_K + 4
    return {**kw, "x": zeros((1, c_in, 1, 1)), "weight": zeros((4, c_in, 1, 1))}


def variant(role: str, **axes: Any) -> str:
    """The first (by name) built variant of `role` whose axes have the given values ("" if none: a row
    using it then fails, loudly, if its op is tested)."""
    names = sorted(n for n, v in MANIFEST.variants.items()
                   if v.role == role and all(v.axes.get(k) == a for k, a in axes.items()))
    return names[0] if names else ""


MANIFEST = load_manifest()
GEMM = variant("gemm", dot="int", dtype="float32")
GEMM_F16 = variant("gemm", dot="int", dtype="float16")
IM2COL_4W4C = variant("im2col", input_layout="4w4c")
IM2COL_GENERIC = variant("im2col", input_layout="generic")
F_GEMM_F16 = variant("float_gemm", dtype="float16")
F_IM2COL_4C = variant("float_im2col", input_layout="4c", dtype="float32")
I32 = 2**31 - 1


@dataclass(frozen=True)
class Row:
    op: str  # "q8": runtime.conv2d_q8, "float": runtime.conv2d_float
    id: str
    build: Callable[[Kwargs], Kwargs]
    exc: type[Exception]
    words: tuple[str, ...]
    xfail: str = ""  # a known gap, reported (strict: the mark must go once it is fixed)


def R(op: str, id: str, build: Callable[[Kwargs], Kwargs], exc: type[Exception], *words: str, xfail: str = "") -> Row:
    return Row(op, id, build, exc, words, xfail)


TE, VE = TypeError, ValueError

TABLE: list[Row] = [
    # --- conv2d_q8: tensors: dtype, rank, type, zero-size -----------------------------------------
    R("q8", "x-float32", cast("x", np.float32), TE, "x", "float32"),
    R("q8", "x-int16", cast("x", np.int16), TE, "x", "int16"),
    R("q8", "x-uint8", cast("x", np.uint8), TE, "x", "uint8"),
    R("q8", "x-list", lambda kw: {**kw, "x": kw["x"].tolist()}, TE, "x", "list"),
    R("q8", "x-rank3", reshape("x", (8, 6, 6)), VE, "x", "4 dimensions", "(8, 6, 6)"),
    R("q8", "x-rank5", reshape("x", (1, 1, 8, 6, 6)), VE, "x", "4 dimensions", "(1, 1, 8, 6, 6)"),
    R("q8", "x-zero-batch", set_(x=np.zeros((0, 8, 6, 6), np.int8)), VE, "x", "zero-size", "(0, 8, 6, 6)"),
    R("q8", "x-zero-height", set_(x=np.zeros((1, 8, 0, 6), np.int8)), VE, "x", "zero-size", "(1, 8, 0, 6)"),
    R("q8", "weight-float64", cast("weight", np.float64), TE, "weight", "float64"),
    R("q8", "weight-rank2", reshape("weight", (4, 72)), VE, "weight", "4 dimensions", "(4, 72)"),
    R("q8", "weight-zero-cout", set_(weight=np.zeros((0, 8, 3, 3), np.int8)), VE, "weight", "(0, 8, 3, 3)"),
    R("q8", "weight-zero-kernel", set_(weight=np.zeros((4, 8, 0, 3), np.int8)), VE, "weight", "(4, 8, 0, 3)"),
    R("q8", "w_scales-int", set_(w_scales=np.ones(4, np.int64)), TE, "w_scales", "int64"),
    R("q8", "w_scales-list", set_(w_scales=[0.01] * 4), TE, "w_scales", "list"),
    R("q8", "w_scales-rank2", reshape("w_scales", (4, 1)), VE, "w_scales", "(4, 1)"),
    R("q8", "w_scales-length", set_(w_scales=np.full(3, 0.01, np.float32)), VE, "w_scales", "(4,)", "(3,)"),
    R("q8", "w_scales-empty", set_(w_scales=np.zeros(0, np.float32)), VE, "w_scales", "(0,)"),
    R("q8", "bias-int32", cast("bias", np.int32), TE, "bias", "int32"),
    R("q8", "bias-length", set_(bias=np.zeros(5, np.float32)), VE, "bias", "(4,)", "(5,)"),
    R("q8", "bias-nan", entry("bias", 2, np.nan), VE, "bias[2]", "nan"),
    R("q8", "bias-inf", entry("bias", 0, -np.inf), VE, "bias[0]", "-inf"),
    R("q8", "bias-float64-overflows-float32", set_(bias=np.full(4, 1e300)), VE, "bias[0]", "1e+300", "float32"),
    # --- conv2d_q8: channels and groups ------------------------------------------------------------
    R("q8", "groups-not-dividing-C_in", set_(groups=3), VE, "groups=3", "C_in=8"),
    R("q8", "groups-not-dividing-C_out", lambda kw: {**kw, "groups": 2, "weight": np.zeros((5, 4, 3, 3), np.int8),
                                                     **per_channel(5)}, VE, "groups=2", "C_out=5"),
    R("q8", "weight-C_in-mismatch", set_(weight=np.zeros((4, 7, 3, 3), np.int8)), VE,
      "weight.shape=(4, 7, 3, 3)", "C_in/groups=8"),
    R("q8", "weight-depthwise-mismatch", set_(groups=8, weight=np.zeros((8, 8, 3, 3), np.int8), **per_channel(8)),
      VE, "weight.shape=(8, 8, 3, 3)", "C_in/groups=1"),
    R("q8", "groups-zero", set_(groups=0), VE, "groups", "0"),
    R("q8", "groups-float", set_(groups=2.0), TE, "groups", "2.0"),
    R("q8", "groups-bool", set_(groups=True), TE, "groups", "True"),
    R("q8", "groups-int-too-big", set_(groups=10**400), VE, "groups", str(2**63 - 1)),
    R("q8", "groups-int-past-str-digits", set_(groups=10**5000), VE, "groups", "5000 digits"),
    # --- conv2d_q8: kernel vs input ----------------------------------------------------------------
    R("q8", "kernel-larger-than-input", set_(weight=np.zeros((4, 8, 7, 7), np.int8)), VE,
      "weight", "kernel span 7", "KH=7", "6 + 2*0", "empty"),
    R("q8", "dilated-kernel-larger-than-input", set_(dilation=4), VE, "kernel span 9", "dilation=4", "6 + 2*0"),
    R("q8", "kernel-larger-than-padded-input", set_(weight=np.zeros((4, 8, 9, 3), np.int8), padding=1), VE,
      "weight", "kernel span 9", "KH=9", "6 + 2*1"),
    R("q8", "kernel-too-wide-only", set_(weight=np.zeros((4, 8, 1, 8), np.int8)), VE, "along W", "KW=8"),
    # --- conv2d_q8: scales -------------------------------------------------------------------------
    R("q8", "x_scale-zero", set_(x_scale=0.0), VE, "x_scale", "0.0"),
    R("q8", "x_scale-negative", set_(x_scale=-0.5), VE, "x_scale", "-0.5"),
    R("q8", "x_scale-nan", set_(x_scale=float("nan")), VE, "x_scale", "nan"),
    R("q8", "x_scale-inf", set_(x_scale=float("inf")), VE, "x_scale", "inf"),
    R("q8", "x_scale-str", set_(x_scale="0.05"), TE, "x_scale", "'0.05'"),
    R("q8", "x_scale-none", set_(x_scale=None), TE, "x_scale", "None"),
    R("q8", "x_scale-overflows-float32", set_(x_scale=1e39), VE, "x_scale", "1e+39", "float32"),
    R("q8", "x_scale-int-too-big-for-float", set_(x_scale=10**400), VE, "x_scale", "too large for a float"),
    R("q8", "x_scale-int-past-str-digits", set_(x_scale=10**5000), VE, "x_scale", "5000 digits"),
    R("q8", "x_scale-fraction-too-big", set_(x_scale=Fraction(10**400, 3)), VE, "x_scale", "too large"),
    R("q8", "x_scale-decimal", set_(x_scale=Decimal("0.05")), TE, "x_scale", "Decimal"),
    R("q8", "x_scale-complex", set_(x_scale=0.05j), TE, "x_scale", "0.05j"),
    R("q8", "out_scale-int-too-big-for-float", set_(out_scale=10**400), VE, "out_scale", "too large for a float"),
    R("q8", "out_scale-negative-huge-int", set_(out_scale=-(10**400)), VE, "out_scale", "too large for a float"),
    R("q8", "out_scale-zero", set_(out_scale=0), VE, "out_scale", "0"),
    R("q8", "out_scale-neg-inf", set_(out_scale=float("-inf")), VE, "out_scale", "-inf"),
    R("q8", "out_scale-underflows-float32", set_(out_scale=1e-50), VE, "out_scale", "1e-50", "float32"),
    R("q8", "w_scales-zero-entry", entry("w_scales", 1, 0.0), VE, "w_scales[1]", "0.0"),
    R("q8", "w_scales-negative-entry", entry("w_scales", 2, -0.25), VE, "w_scales[2]", "-0.25"),
    R("q8", "w_scales-nan-entry", entry("w_scales", 3, np.nan), VE, "w_scales[3]", "nan"),
    R("q8", "w_scales-inf-entry", entry("w_scales", 0, np.inf), VE, "w_scales[0]", "inf"),
    R("q8", "w_scales-float64-overflows-float32", set_(w_scales=np.full(4, 1e39), x_scale=1e-10), VE,
      "w_scales[0]", "1e+39", "float32"),
    R("q8", "w_scales-float64-underflows-float32", set_(w_scales=np.full(4, 1e-300)), VE,
      "w_scales[0]", "1e-300", "float32"),
    # longdouble goes past float64 where it is wider (x86: 80-bit); elsewhere 1e4000 is inf, 1e-4000 is 0
    R("q8", "w_scales-longdouble-too-big", set_(w_scales=np.full(4, np.longdouble("1e4000"))), VE, "w_scales[0]"),
    R("q8", "w_scales-longdouble-too-small", set_(w_scales=np.full(4, np.longdouble("1e-4000"))), VE,
      "w_scales[0]"),
    R("q8", "bias-longdouble-too-big", set_(bias=np.full(4, np.longdouble("-1e4000"))), VE, "bias[0]"),
    R("q8", "x_scale-times-w_scales-overflows", set_(x_scale=1e20, w_scales=np.full(4, 1e20, np.float32)), VE,
      "x_scale * w_scales[0]", "1e+20", "float32"),
    # --- conv2d_q8: zero points --------------------------------------------------------------------
    R("q8", "x_zp-128", set_(x_zp=128), VE, "x_zp", "[-128, 127]", "128"),
    R("q8", "x_zp--129", set_(x_zp=-129), VE, "x_zp", "-129"),
    R("q8", "x_zp-float", set_(x_zp=1.5), TE, "x_zp", "1.5"),
    R("q8", "x_zp-integral-float", set_(x_zp=1.0), TE, "x_zp", "1.0"),
    R("q8", "x_zp-str", set_(x_zp="3"), TE, "x_zp", "'3'"),
    R("q8", "x_zp-bool", set_(x_zp=True), TE, "x_zp", "True"),
    R("q8", "out_zp-200", set_(out_zp=200), VE, "out_zp", "200"),
    R("q8", "out_zp-numpy-int-out-of-range", set_(out_zp=np.int64(-1000)), VE, "out_zp", "-1000"),
    R("q8", "out_zp-none", set_(out_zp=None), TE, "out_zp", "None"),
    R("q8", "x_zp-int-past-str-digits", set_(x_zp=-(10**5000)), VE, "x_zp", "5000 digits"),
    # --- conv2d_q8: stride / padding / dilation ----------------------------------------------------
    R("q8", "padding-negative", set_(padding=-1), VE, "padding", "-1"),
    R("q8", "padding-pair-negative", set_(padding=(0, -2)), VE, "padding", "(0, -2)"),
    R("q8", "stride-zero", set_(stride=0), VE, "stride", "0"),
    R("q8", "stride-pair-zero", set_(stride=(1, 0)), VE, "stride", "(1, 0)"),
    R("q8", "dilation-zero", set_(dilation=0), VE, "dilation", "0"),
    R("q8", "dilation-negative", set_(dilation=(-1, 1)), VE, "dilation", "(-1, 1)"),
    R("q8", "stride-triple", set_(stride=(1, 2, 3)), TE, "stride", "(1, 2, 3)"),
    R("q8", "stride-single", set_(stride=(1,)), TE, "stride", "(1,)"),
    R("q8", "stride-str", set_(stride="2"), TE, "stride", "'2'"),
    R("q8", "stride-float", set_(stride=1.0), TE, "stride", "1.0"),
    R("q8", "stride-pair-float", set_(stride=(1, 1.5)), TE, "stride", "(1, 1.5)"),
    R("q8", "stride-none", set_(stride=None), TE, "stride", "None"),
    R("q8", "stride-ndarray", set_(stride=np.array([1, 1])), TE, "stride", "array([1, 1])"),
    R("q8", "stride-over-int32", set_(stride=2**40), VE, "stride", str(2**40), str(I32)),
    R("q8", "dilation-over-int32", set_(dilation=(1, 2**31)), VE, "dilation", str(2**31), str(I32)),
    R("q8", "padding-over-int32", set_(padding=2**31), VE, "padding", str(2**31), str(I32)),
    R("q8", "padded-input-over-int32", set_(padding=2**30, stride=I32), VE, "padding", str(2**30), "int32"),
    R("q8", "stride-pair-int-past-str-digits", set_(stride=(1, 10**5000)), VE, "stride", "too long to print"),
    # --- conv2d_q8: choices ------------------------------------------------------------------------
    R("q8", "activation-unknown", set_(activation="gelu"), VE, "activation", "'gelu'"),
    R("q8", "activation-case", set_(activation="ReLU"), VE, "activation", "'ReLU'"),
    R("q8", "activation-none-object", set_(activation=None), VE, "activation", "None"),
    R("q8", "layout-unknown", set_(input_layout="no such layout!"), VE, "input_layout", "'no such layout!'"),
    R("q8", "layout-int", set_(input_layout=4), VE, "input_layout", "4"),
    R("q8", "device-not-a-device", set_(device="cpu"), TE, "device", "'cpu'"),
    # --- conv2d_q8: forced variants that cannot serve the call -------------------------------------
    R("q8", "im2col_variant-unknown", set_(im2col_variant="q8ta_im2col_nope"), VE,
      "im2col_variant", "'q8ta_im2col_nope'", "no such variant"),
    R("q8", "gemm_variant-unknown", set_(gemm_variant="q8ta_gemm_nope"), VE,
      "gemm_variant", "'q8ta_gemm_nope'", "no such variant"),
    R("q8", "im2col_variant-is-a-gemm", set_(im2col_variant=GEMM), VE, "im2col_variant", repr(GEMM), "gemm variant"),
    R("q8", "gemm_variant-is-an-im2col", set_(gemm_variant=IM2COL_GENERIC), VE,
      "gemm_variant", repr(IM2COL_GENERIC), "im2col variant"),
    R("q8", "im2col_variant-other-layout", set_(im2col_variant=IM2COL_4W4C, input_layout="4c"), VE,
      "im2col_variant", repr(IM2COL_4W4C), "'4w4c'", "'4c'"),
    R("q8", "im2col_variant-not-a-str", set_(im2col_variant=[IM2COL_GENERIC]), TE,
      "im2col_variant", repr([IM2COL_GENERIC])),
    R("q8", "gemm_variant-not-a-str", set_(gemm_variant=3), TE, "gemm_variant", "3"),
    R("q8", "float16-gemm-forced-w_scales-underflow", set_(gemm_variant=GEMM_F16, w_scales=np.full(4, 1e-9)), VE,
      "w_scales[0]", "1e-09", "float16", GEMM_F16),
    R("q8", "float16-gemm-forced-bias-overflow", set_(gemm_variant=GEMM_F16, bias=np.full(4, 1e6, np.float32)), VE,
      "bias[0]", "1000000.0", "float16", GEMM_F16),
    # --- conv2d_q8: over the device's buffer limit (broadcast zeros: no big host arrays) -----------
    R("q8", "im2col-matrix-over-limit", im2col_too_big, VE, "im2col matrix of x", "maxStorageBufferRange"),
    R("q8", "x-over-limit", x_too_big, VE, "x needs", "maxStorageBufferRange"),
    R("q8", "output-over-limit", output_too_big, VE, "output needs", "maxStorageBufferRange"),
    R("q8", "weight-over-limit", weight_too_big, VE, "weight needs", "maxStorageBufferRange"),
    R("q8", "reduction-over-int32-accumulators", reduction_too_long, VE,
      f"weight.shape=(4, {MAX_K + 4}, 1, 1)", "reduction length", str(MAX_K)),
    # --- conv2d_float (generated only when runtime.conv2d_float exists) ----------------------------
    R("float", "x-int8", cast("x", np.int8), TE, "x", "int8"),
    R("float", "x-list", lambda kw: {**kw, "x": kw["x"].tolist()}, TE, "x", "list"),
    R("float", "x-rank3", reshape("x", (8, 6, 6)), VE, "x", "(8, 6, 6)"),
    R("float", "x-zero-size", set_(x=np.zeros((0, 8, 6, 6), np.float32)), VE, "x", "(0, 8, 6, 6)"),
    R("float", "weight-int8", cast("weight", np.int8), TE, "weight", "int8"),
    R("float", "weight-rank2", reshape("weight", (4, 72)), VE, "weight", "(4, 72)"),
    R("float", "bias-length", set_(bias=np.zeros(5, np.float32)), VE, "bias", "(5,)"),
    R("float", "bias-int", cast("bias", np.int32), TE, "bias", "int32"),
    R("float", "groups-not-dividing-C_in", set_(groups=3), VE, "groups=3", "C_in=8"),
    R("float", "weight-C_in-mismatch", set_(weight=np.zeros((4, 7, 3, 3), np.float32)), VE,
      "weight", "(4, 7, 3, 3)"),
    R("float", "kernel-larger-than-input", set_(weight=np.zeros((4, 8, 7, 7), np.float32)), VE, "kernel"),
    R("float", "stride-zero", set_(stride=0), VE, "stride", "0"),
    R("float", "padding-negative", set_(padding=-1), VE, "padding", "-1"),
    R("float", "dilation-zero", set_(dilation=(1, 0)), VE, "dilation", "(1, 0)"),
    R("float", "stride-triple", set_(stride=(1, 2, 3)), TE, "stride", "(1, 2, 3)"),
    R("float", "activation-unknown", set_(activation="gelu"), VE, "activation", "'gelu'"),
    R("float", "layout-unknown", set_(input_layout="no such layout!"), VE, "input_layout", "'no such layout!'"),
    R("float", "dtype-unknown", set_(dtype="float64"), VE, "dtype", "'float64'"),
    R("float", "im2col_variant-unknown", set_(im2col_variant="nope"), VE, "im2col_variant", "'nope'"),
    R("float", "gemm_variant-q8-gemm", set_(gemm_variant=GEMM), VE, "gemm_variant", repr(GEMM)),
    R("float", "device-not-a-device", set_(device="cpu"), TE, "device", "'cpu'"),
    R("float", "x-nan", entry("x", (0, 1, 2, 3), np.nan), VE, "x[0, 1, 2, 3]", "nan"),
    R("float", "x-float64-overflows-float32", lambda kw: entry("x", (0, 0, 0, 0), 1e39)(cast("x", np.float64)(kw)),
      VE, "x[0, 0, 0, 0]", "1e+39", "float32"),
    R("float", "weight-overflows-float16", lambda kw: {**entry("weight", (1, 0, 0, 0), 1e5)(kw), "dtype": "float16"},
      VE, "weight[1, 0, 0, 0]", "100000.0", "float16"),
    R("float", "bias-inf", entry("bias", 3, np.inf), VE, "bias[3]", "inf"),
    R("float", "groups-zero", set_(groups=0), VE, "groups", "0"),
    R("float", "padding-over-int32", set_(padding=2**31), VE, "padding", str(2**31)),
    R("float", "dtype-not-a-str", set_(dtype=np.float32), VE, "dtype"),
    R("float", "im2col_variant-q8-im2col", set_(im2col_variant=IM2COL_GENERIC), VE,
      "im2col_variant", repr(IM2COL_GENERIC)),
    R("float", "im2col_variant-other-layout", set_(im2col_variant=F_IM2COL_4C), VE,
      "im2col_variant", repr(F_IM2COL_4C), "'4c'", "'contig'"),
    R("float", "gemm_variant-other-dtype", set_(gemm_variant=F_GEMM_F16), VE,
      "gemm_variant", repr(F_GEMM_F16), "'float16'", "'float32'"),
    R("float", "gemm_variant-not-a-str", set_(gemm_variant=7), TE, "gemm_variant", "7"),
    R("float", "im2col-matrix-over-limit", float_im2col_too_big, VE, "im2col matrix of x", "maxStorageBufferRange"),
    R("float", "x-over-limit", float_x_too_big, VE, "x needs", "maxStorageBufferRange"),
    # --- opening a Device: refused before any Vulkan call ------------------------------------------
    R("device", "env-double-minus", set_(env="--1"), VE, "SHADERKIT_DEVICE", "'--1'", "device index"),
    R("device", "env-negative", set_(env="-1"), VE, "SHADERKIT_DEVICE", "'-1'"),
    R("device", "env-plus", set_(env="+0"), VE, "SHADERKIT_DEVICE", "'+0'"),
    R("device", "env-arabic-indic-digit", set_(env="\u0661"), VE, "SHADERKIT_DEVICE", "ASCII digits"),
    R("device", "env-superscript-digit", set_(env="\u00b2"), VE, "SHADERKIT_DEVICE", "ASCII digits"),
    R("device", "selector-float", set_(selector=1.5), TE, "selector", "1.5"),
    R("device", "selector-bool", set_(selector=True), TE, "selector", "True"),
    R("device", "selector-bytes", set_(selector=b"llvm"), TE, "selector", "b'llvm'"),
    R("device", "selector-negative", set_(selector=-1), VE, "selector=-1", "negative"),
    R("device", "selector-empty", set_(selector=" "), VE, "selector", "empty"),
    R("device", "mask-plain-string", set_(mask_features="shaderFloat16"), TE, "mask_features", "'shaderFloat16'"),
    R("device", "mask-unknown-name", set_(mask_features=["shaderFloat16", "shaderFloat17"]), VE,
      "mask_features", "'shaderFloat17'", "shaderIntegerDotProduct"),
    R("device", "mask-not-a-name", set_(mask_features=[16]), TE, "mask_features", "16"),
    R("device", "mask-none", set_(mask_features=None), TE, "mask_features", "None"),
]

ROWS = [row for row in TABLE if row.op in OPS]
BASELINES: dict[str, Callable[[], Kwargs]] = {"q8": baseline_q8, "float": baseline_float, "device": baseline_device}


def op(name: str) -> Callable[..., Any]:
    if name == "q8":
        return runtime.conv2d_q8
    if name == "device":
        return open_device
    assert CONV2D_FLOAT is not None
    return CONV2D_FLOAT


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every Device (the default one included) fail the test on any submission, allocation or
    pipeline creation, and opening a Device fail it on creating a Vulkan instance."""
    calls: list[str] = []

    def refuse(method: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            calls.append(method)
            pytest.fail(f"{method} was called for a call that should have been rejected on the host")
        return refused

    default_device()  # created (and its device queried) outside the watched call
    for method in ("run", "alloc", "upload", "pipeline"):
        monkeypatch.setattr(Device, method, refuse(f"Device.{method}"))
    monkeypatch.setattr(context, "_create_instance", refuse("vkCreateInstance"))
    return calls


def test_table_is_complete() -> None:
    ids = [(row.op, row.id) for row in TABLE]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    assert sum(row.op == "q8" for row in TABLE) >= 30
    assert all(issubclass(row.exc, (ValueError, TypeError)) and row.words for row in TABLE)


@pytest.mark.parametrize("op_name", OPS)
def test_baseline_is_valid_and_reaches_the_gpu(op_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows' starting point is a good call, and the spy used by the rows sees its submission
    (for "device": its Vulkan instance)."""
    if op_name == "device":
        created: list[int] = []
        real_create = context._create_instance
        monkeypatch.setattr(context, "_create_instance", lambda: created.append(1) or real_create())
        with op(op_name)(**BASELINES[op_name]()) as dev:
            assert created and not dev.closed
        return
    submitted: list[int] = []
    real_run = Device.run

    def spy(self: Device, steps: Any, **kwargs: Any) -> Any:
        submitted.append(len(steps))
        return real_run(self, steps, **kwargs)

    monkeypatch.setattr(Device, "run", spy)
    kwargs = BASELINES[op_name]()
    out = op(op_name)(**kwargs)
    assert submitted, "the baseline call never reached Device.run"
    if op_name == "q8":
        want, _ = conv2d_q8_reference(**kwargs)
        assert np.abs(out.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("row", [
    pytest.param(r, id=f"{r.op}:{r.id}", marks=[pytest.mark.xfail(reason=r.xfail, strict=True)] if r.xfail else [])
    for r in ROWS
])
def test_bad_input(row: Row, no_gpu: list[str]) -> None:
    kwargs = row.build(BASELINES[row.op]())
    tracemalloc.start()
    try:
        with pytest.raises((TypeError, ValueError)) as err:
            op(row.op)(**kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert isinstance(err.value, row.exc), f"expected {row.exc.__name__}, got {type(err.value).__name__}: {message}"
    missing = [w for w in row.words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"
    assert not no_gpu, f"reached the device: {no_gpu}"
    assert peak < MAX_HOST_PEAK, f"rejecting the call allocated {peak / 2**20:.1f} MiB on the host"


def test_rejected_calls_leave_the_device_usable() -> None:
    """After the rows, the default device still runs a good call (nothing half-built was left)."""
    before = default_device().live_objects()
    kwargs = baseline_q8()
    want, _ = conv2d_q8_reference(**kwargs)
    out = runtime.conv2d_q8(**kwargs)
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
    after = default_device().live_objects()
    assert after["buffers"] == before["buffers"] == 0


def test_device_argument_must_be_open() -> None:
    """A closed Device passed explicitly is refused with a ShaderkitError, not a crash."""
    with Device() as dev:
        pass
    with pytest.raises(runtime.ShaderkitError, match="closed"):
        runtime.conv2d_q8(**baseline_q8(), device=dev)


@pytest.mark.parametrize("scales", [
    pytest.param({"out_scale": 1e-20}, id="tiny-out_scale-saturates-both-ways"),
    pytest.param({"out_scale": 1e20}, id="huge-out_scale-rounds-to-out_zp"),
    pytest.param({"x_scale": 1e19, "w_scales": np.full(4, 1e19, np.float32)}, id="scale-product-near-float32-max"),
    pytest.param({"x_scale": 1e-30, "w_scales": np.full(4, 1e-30, np.float32), "out_scale": 1e-45},
                 id="float32-denormal-edges"),
    pytest.param({"stride": (5, 1), "padding": (0, 3), "dilation": (1, 5)}, id="large-stride-and-dilation"),
])
def test_values_just_inside_the_checks_compute_right(scales: Kwargs) -> None:
    """Arguments the checks let through must give the reference result (+-1), however extreme.

    The first and third cases caught the epilogue converting an out-of-range float to int (undefined;
    lavapipe made +inf into -128): templates/include/epilogue.glsl.j2 now clamps in float first.
    """
    kwargs = {**baseline_q8(), **scales}
    want, _ = conv2d_q8_reference(**kwargs)
    got = runtime.conv2d_q8(**kwargs)
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"{int((diff > 1).sum())} elements off; got {np.unique(got)}, want {np.unique(want)}"
    if "out_scale" in scales and scales["out_scale"] == 1e-20:
        assert {-128, 127} <= set(np.unique(got).tolist())
