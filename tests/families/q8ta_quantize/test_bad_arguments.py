"""Bad arguments to runtime.quantize / runtime.dequantize are refused with a TypeError or ValueError
naming the argument and the value, before anything reaches the device.

ONE table: each row takes a valid baseline call, changes one thing, and says which exception and which
words the message must hold. While a row runs, the device's run / alloc / upload / pipeline fail the
test if called (tests/test_bad_inputs.py's `no_gpu`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import default_device
from runtime.core.manifest import load_manifest
from runtime.core.packed import pack
from tests.test_bad_inputs import no_gpu  # noqa: F401  (the fixture the rows use)

Kwargs = dict[str, Any]
TE, VE = TypeError, ValueError
MANIFEST = load_manifest()


def variant(role: str, **axes: Any) -> str:
    return sorted(n for n, e in MANIFEST.variants.items()
                  if e.role == role and all(e.axes.get(k) == v for k, v in axes.items()))[0]


def baseline(op: str) -> Kwargs:
    rng = np.random.default_rng(4)
    if op == "quantize":
        return {"x": rng.standard_normal((1, 5, 3, 4)).astype(np.float32), "scale": 0.05, "zp": 3}
    return {"q": rng.integers(-128, 128, (1, 5, 3, 4), dtype=np.int8), "scale": 0.05, "zp": 3}


def set_(**changes: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, **changes}


def cast(name: str, dtype: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, name: kw[name].astype(dtype)}


def too_big(dtype: Any) -> Callable[[Kwargs], Kwargs]:
    """A broadcast (not allocated) tensor over maxStorageBufferRange."""
    def build(kw: Kwargs) -> Kwargs:
        side = math.isqrt(int(default_device().info.limits["maxStorageBufferRange"]) // 4) + 64
        name = "x" if "x" in kw else "q"
        return {**kw, name: np.broadcast_to(np.zeros((), dtype), (1, 4, side, side))}
    return build


@dataclass(frozen=True)
class Row:
    op: str
    id: str
    build: Callable[[Kwargs], Kwargs]
    exc: type[Exception]
    words: tuple[str, ...]


def R(op: str, id: str, build: Callable[[Kwargs], Kwargs], exc: type[Exception], *words: str) -> Row:
    return Row(op, id, build, exc, words)


def param_rows(op: str) -> list[Row]:
    """scale / zp / packed / variant / device rows, the same for both ops."""
    return [
        R(op, "scale-zero", set_(scale=0.0), VE, "scale", "> 0", "0.0"),
        R(op, "scale-negative", set_(scale=-0.5), VE, "scale", "-0.5"),
        R(op, "scale-nan", set_(scale=float("nan")), VE, "scale", "nan"),
        R(op, "scale-inf", set_(scale=float("inf")), VE, "scale", "inf"),
        R(op, "scale-str", set_(scale="0.1"), TE, "scale", "'0.1'"),
        R(op, "scale-bool", set_(scale=True), TE, "scale", "True"),
        R(op, "scale-subnormal", set_(scale=1e-39), VE, "scale=1e-39", "float32"),
        R(op, "scale-over-2^120", set_(scale=1e37), VE, "scale=1e+37", "float32"),
        R(op, "scale-channels-length", set_(scale=np.full(4, 0.1, np.float32)), VE, "scale", "(5,)", "(4,)"),
        R(op, "scale-channels-int", set_(scale=np.ones(5, np.int32)), TE, "scale", "int32"),
        R(op, "scale-channels-rank2", set_(scale=np.full((5, 1), 0.1, np.float32)), VE, "scale", "(5, 1)"),
        R(op, "scale-channels-nan", set_(scale=np.array([0.1, np.nan, 1, 1, 1], np.float32)), VE, "scale[1]", "nan"),
        R(op, "scale-channels-negative", set_(scale=np.array([0.1, 1, -1, 1, 1], np.float32)), VE, "scale[2]"),
        R(op, "scale-channels-subnormal", set_(scale=np.array([0.1, 1, 1, 1e-40, 1], np.float32)), VE,
          "scale[3]", "float32"),
        R(op, "zp-128", set_(zp=128), VE, "zp", "[-128, 127]", "128"),
        R(op, "zp-float", set_(zp=1.0), TE, "zp", "1.0"),
        R(op, "zp-channels-range", set_(zp=np.array([0, 0, -129, 0, 0])), VE, "zp[2]", "-129"),
        R(op, "zp-channels-length", set_(zp=np.zeros(6, np.int32)), VE, "zp", "(5,)", "(6,)"),
        R(op, "zp-channels-float", set_(zp=np.zeros(5, np.float32)), TE, "zp", "float32"),
        R(op, "layout-unknown", set_(layout="no such layout!"), VE, "layout", "'no such layout!'", "4w4c"),
        R(op, "layout-not-a-name", set_(layout=4), VE, "layout", "4"),
        R(op, "packed-int", set_(packed=1), TE, "packed", "1"),
        R(op, "variant-unknown", set_(variant=f"q8ta_{op}_nope"), VE, "variant", "no such variant"),
        R(op, "variant-list", set_(variant=[variant(op)]), TE, "variant"),
        R(op, "variant-other-role", set_(variant=variant("binary_q8")), VE, "variant", "binary_q8 variant"),
        R(op, "variant-other-layout", set_(variant=variant(op, layout="4c", dtype="float32")), VE, "variant", "'4c'",
          "'4w4c'"),
        R(op, "variant-per-tensor-for-channels", set_(scale=np.full(5, 0.1, np.float32),
                                                      variant=variant(op, quant="per_tensor", dtype="float32")),
          VE, "variant", "per channel"),
        R(op, "device-not-a-device", set_(device="gpu0"), TE, "device", "'gpu0'"),
    ]


TABLE: list[Row] = [
    R("quantize", "x-int8", cast("x", np.int8), TE, "x", "int8"),
    R("quantize", "x-float64", cast("x", np.float64), TE, "x", "float64"),
    R("quantize", "x-list", lambda kw: {**kw, "x": kw["x"].tolist()}, TE, "x", "list"),
    R("quantize", "x-rank3", lambda kw: {**kw, "x": kw["x"][0]}, VE, "x", "4 dimensions", "(5, 3, 4)"),
    R("quantize", "x-zero-size", set_(x=np.zeros((1, 0, 3, 4), np.float32)), VE, "x", "zero-size"),
    R("quantize", "x-packed-int8", lambda kw: {**kw, "x": pack(np.zeros((1, 5, 3, 4), np.int8), "4c")}, TE,
      "x is a packed int8"),
    R("quantize", "x-packed-float-4c", lambda kw: {**kw, "x": pack(kw["x"], "4c")}, VE, "x", "'4c'", "plain NCHW"),
    R("quantize", "x-too-big", too_big(np.float32), VE, "maxStorageBufferRange"),
    R("quantize", "variant-float16-for-float32", set_(variant=variant("quantize", dtype="float16")), VE,
      "variant", "float16", "float32"),
    *param_rows("quantize"),
    R("dequantize", "q-float32", cast("q", np.float32), TE, "q", "float32"),
    R("dequantize", "q-int16", cast("q", np.int16), TE, "q", "int16"),
    R("dequantize", "q-uint8", cast("q", np.uint8), TE, "q", "uint8"),
    R("dequantize", "q-rank5", lambda kw: {**kw, "q": kw["q"][None]}, VE, "q", "4 dimensions"),
    R("dequantize", "q-packed-float", lambda kw: {**kw, "q": pack(np.zeros((1, 5, 3, 4), np.float32), "contig")},
      TE, "q is a packed float32"),
    R("dequantize", "layout-vs-packed-q", lambda kw: {**kw, "q": pack(kw["q"], "4c"), "layout": "4w4c"}, VE,
      "layout='4w4c'", "'4c'"),
    R("dequantize", "dtype-float64", set_(dtype="float64"), VE, "dtype", "'float64'"),
    R("dequantize", "dtype-np-int8", set_(dtype=np.int8), VE, "dtype", "'int8'"),
    R("dequantize", "dtype-none", set_(dtype=None), VE, "dtype", "None"),
    R("dequantize", "q-too-big", too_big(np.int8), VE, "maxStorageBufferRange"),
    *param_rows("dequantize"),
]


def test_table_is_complete() -> None:
    ids = [(row.op, row.id) for row in TABLE]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    assert all(issubclass(row.exc, (ValueError, TypeError)) and row.words for row in TABLE)


@pytest.mark.parametrize("op", ["quantize", "dequantize"])
def test_baseline_is_valid(op: str) -> None:
    assert getattr(runtime, op)(**baseline(op)).shape == (1, 5, 3, 4)


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r.op}:{r.id}") for r in TABLE])
def test_bad_argument(row: Row) -> None:
    kwargs = row.build(baseline(row.op))
    with pytest.raises((TypeError, ValueError)) as err:
        getattr(runtime, row.op)(**kwargs)
    message = str(err.value)
    assert isinstance(err.value, row.exc), f"expected {row.exc.__name__}, got {type(err.value).__name__}: {message}"
    missing = [w for w in row.words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"
