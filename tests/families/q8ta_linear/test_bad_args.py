"""Bad arguments to runtime.linear_q8 are refused on the host with a ValueError/TypeError naming them.

One table, as in tests/test_bad_inputs.py: each row changes one thing in a valid call and says the
exception and the words its message must hold; the device refuses any work while a row runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.oplib.requant import MAX_K
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
CONVT = MANIFEST.names(role="convt")[0]
GEMM_F16 = next(n for n in MANIFEST.names(role="gemm") if MANIFEST.variants[n].axes.get("dtype") == "float16")


def baseline() -> Kwargs:
    rng = np.random.default_rng(4)
    return {
        "x": rng.integers(-128, 128, (5, 7), dtype=np.int8),
        "weight": rng.integers(-128, 128, (3, 7), dtype=np.int8),
        "w_scales": np.full(3, 0.01, np.float32), "bias": np.zeros(3, np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2,
    }


def R(id: str, build: Callable[[Kwargs], Kwargs], exc: type[Exception], *words: str) -> Row:
    return _R("linear_q8", id, build, exc, *words)


def sized(m: int, k: int, n: int) -> Callable[[Kwargs], Kwargs]:
    """A call of the given sizes, tensors backed by one element (no big host allocation)."""
    return set_(x=zeros((m, k)), weight=zeros((n, k)), w_scales=np.full(n, 0.01, np.float32), bias=None)


TABLE = [
    R("x-float", cast("x", np.float32), TE, "x", "float32"),
    R("x-int16", cast("x", np.int16), TE, "x", "int16"),
    R("x-3d", reshape("x", (1, 5, 7)), VE, "x", "2 dimensions", "(1, 5, 7)"),
    R("x-list", set_(x=[[1, 2]]), TE, "x", "list"),
    R("x-empty", set_(x=np.zeros((0, 7), np.int8)), VE, "x", "zero-size"),
    R("weight-K-mismatch", set_(weight=np.zeros((3, 6), np.int8)), VE, "weight.shape=(3, 6)", "K=7"),
    R("weight-4d", reshape("weight", (3, 7, 1, 1)), VE, "weight", "2 dimensions"),
    R("weight-uint8", cast("weight", np.uint8), TE, "weight", "uint8"),
    R("w_scales-length", set_(w_scales=np.full(4, 0.01, np.float32)), VE, "w_scales", "(3,)"),
    R("w_scales-negative", set_(w_scales=np.array([0.1, -0.1, 0.1], np.float32)), VE, "w_scales[1]"),
    R("w_scales-int", set_(w_scales=np.ones(3, np.int32)), TE, "w_scales", "int32"),
    R("bias-length", set_(bias=np.zeros(2, np.float32)), VE, "bias", "(2,)"),
    R("bias-nan", set_(bias=np.array([np.nan, 0, 0], np.float32)), VE, "bias[0]", "nan"),
    R("x_scale-zero", set_(x_scale=0.0), VE, "x_scale", "0.0"),
    R("x_scale-str", set_(x_scale="1"), TE, "x_scale", "'1'"),
    R("out_scale-inf", set_(out_scale=float("inf")), VE, "out_scale", "inf"),
    R("x_zp-range", set_(x_zp=200), VE, "x_zp", "200"),
    R("x_zp-float", set_(x_zp=1.5), TE, "x_zp", "1.5"),
    R("out_zp-range", set_(out_zp=-129), VE, "out_zp", "-129"),
    R("activation-unknown", set_(activation="gelu"), VE, "activation", "'gelu'"),
    R("variant-unknown", set_(variant="nope"), VE, "variant='nope'", "gemm variants"),
    R("variant-other-role", set_(variant=CONVT), VE, f"variant={CONVT!r}", "convt"),
    R("variant-not-a-str", set_(variant=3), TE, "variant", "3"),
    R("scales-overflow-float16-variant", set_(variant=GEMM_F16, w_scales=np.full(3, 1e5, np.float32)), VE,
      "w_scales[0]", "float16"),
    R("device-not-a-device", set_(device="cpu"), TE, "device", "'cpu'"),
    R("reduction-too-long", sized(1, MAX_K + 1, 1), VE, "reduction length", str(MAX_K)),
    R("x-over-limit", lambda kw: sized(limit() // 16 + 64, 16, 1)(kw), VE, "x needs", "maxStorageBufferRange"),
    R("weight-over-limit", lambda kw: sized(1, 64, limit() // 64 + 64)(kw), VE, "weight needs",
      "maxStorageBufferRange"),
    R("output-over-limit", lambda kw: sized(limit() // 64 + 64, 4, 64)(kw), VE, "output needs",
      "maxStorageBufferRange"),
]


def test_baseline_is_valid() -> None:
    assert runtime.linear_q8(**baseline()).shape == (5, 3)


def check_row(op: Callable[..., Any], row: Row, kwargs: Kwargs, refused: list[str]) -> None:
    """`op(**kwargs)` raises the row's exception type, its message holds the row's words, and the
    device was asked for nothing."""
    with pytest.raises((TypeError, ValueError)) as err:
        op(**kwargs)
    message = str(err.value)
    assert isinstance(err.value, row.exc), f"expected {row.exc.__name__}, got {type(err.value).__name__}: {message}"
    missing = [w for w in row.words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"
    assert not refused, f"reached the device: {refused}"


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_bad_argument(row: Row, no_gpu: list[str]) -> None:  # noqa: F811
    check_row(runtime.linear_q8, row, row.build(baseline()), no_gpu)
