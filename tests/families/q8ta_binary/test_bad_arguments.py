"""Bad arguments to runtime.add_q8 / runtime.mul_q8 are refused with a TypeError or ValueError naming
the argument and the value, before anything reaches the device (tests/test_bad_inputs.py's `no_gpu`).

ONE table: each row takes a valid baseline call, changes one thing, and says which exception and which
words the message must hold. Every row runs for both ops.
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
OPS = ("add_q8", "mul_q8")


def variant(**axes: Any) -> str:
    return sorted(n for n, e in MANIFEST.variants.items()
                  if e.role == "binary_q8" and all(e.axes.get(k) == v for k, v in axes.items()))[0]


def baseline() -> Kwargs:
    rng = np.random.default_rng(6)
    return {"a": rng.integers(-128, 128, (1, 5, 3, 4), dtype=np.int8),
            "b": rng.integers(-128, 128, (1, 5, 3, 4), dtype=np.int8),
            "a_scale": 0.05, "a_zp": 3, "b_scale": 0.02, "b_zp": -1, "out_scale": 0.1, "out_zp": 0}


def set_(**changes: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, **changes}


def cast(name: str, dtype: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, name: kw[name].astype(dtype)}


def output_too_big(kw: Kwargs) -> Kwargs:
    """a (1, 1, side, side) times b (1, 4, 1, 1): small inputs, an output over maxStorageBufferRange."""
    side = math.isqrt(int(default_device().info.limits["maxStorageBufferRange"]) // 4) + 64
    return {**kw, "a": np.broadcast_to(np.zeros((), np.int8), (1, 1, side, side)), "b": np.zeros((1, 4, 1, 1), np.int8),
            "layout": "contig"}  # a byte per pixel of a; 4 of the output


@dataclass(frozen=True)
class Row:
    id: str
    build: Callable[[Kwargs], Kwargs]
    exc: type[Exception]
    words: tuple[str, ...]


def R(id: str, build: Callable[[Kwargs], Kwargs], exc: type[Exception], *words: str) -> Row:
    return Row(id, build, exc, words)


TABLE: list[Row] = [
    R("a-float32", cast("a", np.float32), TE, "a", "float32"),
    R("b-int16", cast("b", np.int16), TE, "b", "int16"),
    R("b-uint8", cast("b", np.uint8), TE, "b", "uint8"),
    R("a-list", lambda kw: {**kw, "a": kw["a"].tolist()}, TE, "a", "list"),
    R("b-rank3", lambda kw: {**kw, "b": kw["b"][0]}, VE, "b", "4 dimensions", "(5, 3, 4)"),
    R("a-zero-size", set_(a=np.zeros((1, 5, 0, 4), np.int8)), VE, "a", "zero-size"),
    R("b-packed-float", set_(b=pack(np.zeros((1, 5, 3, 4), np.float32), "contig")), TE, "b is a packed float32"),
    R("shapes-do-not-broadcast", set_(b=np.zeros((1, 4, 3, 4), np.int8)), VE, "a.shape=(1, 5, 3, 4)",
      "b.shape=(1, 4, 3, 4)", "broadcast"),
    R("shapes-channels-vs-width", set_(b=np.zeros((1, 1, 1, 5), np.int8)), VE, "b.shape=(1, 1, 1, 5)"),
    R("a_scale-zero", set_(a_scale=0), VE, "a_scale", "> 0"),
    R("b_scale-nan", set_(b_scale=float("nan")), VE, "b_scale", "nan"),
    R("out_scale-inf", set_(out_scale=float("inf")), VE, "out_scale", "inf"),
    R("out_scale-subnormal", set_(out_scale=1e-40), VE, "out_scale=1e-40", "float32"),
    R("a_scale-over-float32", set_(a_scale=1e39), VE, "a_scale=1e+39", "float32"),
    R("a_scale-str", set_(a_scale="1"), TE, "a_scale", "'1'"),
    R("ratio-overflows", set_(a_scale=1e30, out_scale=1e-30), VE, "out_scale", "too large"),
    R("a_zp-128", set_(a_zp=128), VE, "a_zp", "[-128, 127]"),
    R("b_zp-minus-129", set_(b_zp=-129), VE, "b_zp", "-129"),
    R("out_zp-float", set_(out_zp=0.0), TE, "out_zp", "0.0"),
    R("out_zp-bool", set_(out_zp=False), TE, "out_zp", "False"),
    R("activation-gelu", set_(activation="gelu"), VE, "activation", "'gelu'", "relu"),
    R("layout-unknown", set_(layout="no such layout!"), VE, "layout", "'no such layout!'"),
    R("layout-vs-packed-a", lambda kw: {**kw, "a": pack(kw["a"], "4c"), "layout": "4w4c"}, VE, "layout='4w4c'",
      "'4c'"),
    R("packed-str", set_(packed="yes"), TE, "packed", "'yes'"),
    R("variant-unknown", set_(variant="q8ta_binary_nope"), VE, "variant", "no such variant"),
    R("variant-other-role", set_(variant=sorted(MANIFEST.names(role="quantize"))[0]), VE, "variant",
      "quantize variant"),
    R("variant-other-layout", lambda kw: {**kw, "variant": variant(layout="4c", op=kw["_op"])}, VE, "variant",
      "'4c'", "'4w4c'"),
    R("variant-specialized-for-a-broadcast", lambda kw: {**kw, "b": np.zeros((2, 1, 3, 4), np.int8),
                                                         "variant": variant(layout="4w4c", op=kw["_op"])},
      VE, "variant", "generic variant"),
    R("output-too-big", output_too_big, VE, "output", "maxStorageBufferRange"),
    R("device-not-a-device", set_(device=0), TE, "device", "0"),
]


def test_table_is_complete() -> None:
    ids = [row.id for row in TABLE]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    assert all(issubclass(row.exc, (ValueError, TypeError)) and row.words for row in TABLE)


@pytest.mark.parametrize("op", OPS)
def test_baseline_is_valid(op: str) -> None:
    assert getattr(runtime, op)(**baseline()).shape == (1, 5, 3, 4)


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in TABLE])
def test_bad_argument(row: Row, op: str) -> None:
    kwargs = row.build({**baseline(), "_op": op[:3]})
    kwargs.pop("_op")
    with pytest.raises((TypeError, ValueError)) as err:
        getattr(runtime, op)(**kwargs)
    message = str(err.value)
    assert isinstance(err.value, row.exc), f"expected {row.exc.__name__}, got {type(err.value).__name__}: {message}"
    missing = [w for w in row.words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"


def test_the_op_is_checked_against_the_variant() -> None:
    """A mul variant forced on add names both ops."""
    with pytest.raises(ValueError, match="it computes 'mul', the call 'add'"):
        runtime.add_q8(**baseline(), variant=variant(op="mul"))
