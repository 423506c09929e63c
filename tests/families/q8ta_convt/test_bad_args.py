"""Bad arguments to runtime.conv_transpose2d_q8 are refused on the host with a ValueError/TypeError naming
them (one table, as in tests/test_bad_inputs.py; the device refuses any work while a row runs)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.oplib.requant import MAX_K
from tests.families.q8ta_linear.test_bad_args import check_row
from tests.test_bad_inputs import (
    Kwargs,
    Row,
    cast,
    limit,
    no_gpu,  # noqa: F401  (the fixture that makes the device refuse work)
    reshape,
    set_,
    zeros,
)
from tests.test_bad_inputs import R as _R

VE, TE = ValueError, TypeError
MANIFEST = load_manifest()
GEMM = MANIFEST.names(role="gemm")[0]
CONVT_4W4C = next(n for n in MANIFEST.names(role="convt") if MANIFEST.variants[n].axes["input_layout"] == "4w4c")


def baseline() -> Kwargs:
    """A valid call: 8 -> 4 channels, kernel 3, stride 2, 5x5 input (9x9 output)."""
    rng = np.random.default_rng(6)
    return {
        "x": rng.integers(-128, 128, (1, 8, 5, 5), dtype=np.int8),
        "weight": rng.integers(-128, 128, (8, 4, 3, 3), dtype=np.int8),
        "w_scales": np.full(4, 0.01, np.float32), "bias": np.zeros(4, np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2, "stride": 2,
    }


def R(id: str, build: Callable[[Kwargs], Kwargs], exc: type[Exception], *words: str) -> Row:
    return _R("conv_transpose2d_q8", id, build, exc, *words)


def sized(x_shape: tuple[int, ...], w_shape: tuple[int, ...], **extra: Any) -> Callable[[Kwargs], Kwargs]:
    """A call of the given sizes, tensors backed by one element (no big host allocation)."""
    c_out = w_shape[1] * extra.get("groups", 1)
    return set_(x=zeros(x_shape), weight=zeros(w_shape), w_scales=np.full(c_out, 0.01, np.float32), bias=None,
                stride=1, **extra)


def side(bytes_per_pixel: int) -> int:
    return math.isqrt(limit() // bytes_per_pixel) + 16


TABLE = [
    R("x-float", cast("x", np.float32), TE, "x", "float32"),
    R("x-rank3", reshape("x", (8, 5, 5)), VE, "x", "4 dimensions", "(8, 5, 5)"),
    R("x-list", lambda kw: {**kw, "x": kw["x"].tolist()}, TE, "x", "list"),
    R("weight-int16", cast("weight", np.int16), TE, "weight", "int16"),
    R("weight-rank3", reshape("weight", (8, 4, 9)), VE, "weight", "4 dimensions"),
    R("weight-C_in-mismatch", set_(weight=np.zeros((6, 4, 3, 3), np.int8)), VE, "weight.shape=(6, 4, 3, 3)", "C_in=8"),
    R("groups-not-dividing-C_in", set_(groups=3, w_scales=np.ones(12, np.float32), bias=None), VE, "groups=3",
      "C_in=8"),
    R("groups-zero", set_(groups=0), VE, "groups", "0"),
    R("w_scales-length-ignores-groups", set_(groups=2), VE, "w_scales", "(8,)"),
    R("bias-length", set_(bias=np.zeros(5, np.float32)), VE, "bias", "(4,)"),
    R("stride-zero", set_(stride=0), VE, "stride", "0"),
    R("stride-triple", set_(stride=(1, 2, 3)), TE, "stride", "(1, 2, 3)"),
    R("padding-negative", set_(padding=-1), VE, "padding", "-1"),
    R("padding-empties-output", set_(padding=(6, 0)), VE, "padding=(6, 0)", "along H", "size -1"),
    R("output_padding-not-below-stride", set_(output_padding=2), VE, "output_padding=2", "stride 2"),
    R("output_padding-with-stride-1", set_(stride=1, output_padding=(0, 1)), VE, "output_padding=(0, 1)",
      "along W"),
    R("output_padding-negative", set_(output_padding=-1), VE, "output_padding", "-1"),
    R("output_padding-float", set_(output_padding=0.5), TE, "output_padding", "0.5"),
    R("dilation-zero", set_(dilation=(1, 0)), VE, "dilation", "(1, 0)"),
    R("x_zp-range", set_(x_zp=128), VE, "x_zp", "128"),
    R("out_scale-negative", set_(out_scale=-1.0), VE, "out_scale", "-1.0"),
    R("activation-unknown", set_(activation="gelu"), VE, "activation", "'gelu'"),
    R("input_layout-unknown", set_(input_layout="nchw?"), VE, "input_layout", "'nchw?'"),
    R("input_layout-contradicts-packed", lambda kw: {**kw, "x": runtime.pack(kw["x"], "4c"), "input_layout": "4w4c"},
      VE, "input_layout='4w4c'", "'4c'"),
    R("variant-unknown", set_(variant="nope"), VE, "variant='nope'", "convt variants"),
    R("variant-other-role", set_(variant=GEMM), VE, f"variant={GEMM!r}", "gemm"),
    R("variant-other-layout", set_(variant=CONVT_4W4C, input_layout="4c"), VE, f"variant={CONVT_4W4C!r}",
      "'4w4c'", "'4c'"),
    R("variant-not-a-str", set_(variant=1.0), TE, "variant", "1.0"),
    R("device-not-a-device", set_(device=0), TE, "device", "0"),
    R("reduction-too-long", sized((1, MAX_K + 4, 1, 1), (MAX_K + 4, 1, 1, 1)), VE, "reduction length", str(MAX_K)),
    R("x-over-limit", sized((1, 8, side(8), side(8)), (8, 1, 1, 1)), VE, "x needs", "maxStorageBufferRange"),
    R("output-over-limit", sized((1, 4, side(64), side(64)), (4, 64, 1, 1)), VE, "output needs",
      "maxStorageBufferRange"),
    R("groups-over-workgroup-count", sized((1, 2**16, 1, 1), (2**16, 1, 1, 1), groups=2**16), VE,
      "maxComputeWorkGroupCount[2]", "groups"),
    R("weight-over-limit", sized((1, 64, 1, 1), (64, limit() // 64 + 64, 1, 1)), VE, "weight needs",
      "maxStorageBufferRange"),
]


def test_baseline_is_valid() -> None:
    assert runtime.conv_transpose2d_q8(**baseline()).shape == (1, 4, 11, 11)


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_bad_argument(row: Row, no_gpu: list[str]) -> None:  # noqa: F811
    check_row(runtime.conv_transpose2d_q8, row, row.build(baseline()), no_gpu)
