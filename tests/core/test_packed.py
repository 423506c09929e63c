"""runtime.pack / runtime.unpack / Packed, and the ops taking input already packed (host or device)."""

from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime.core.layouts import Layout
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference

LAYOUTS = sorted(load_manifest().layouts)
RNG = np.random.default_rng(7)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
def test_round_trip_every_layout(layout: str, dtype: str) -> None:
    shape = (2, 5, 3, 7)
    x = (RNG.integers(-128, 128, shape) if dtype == "int8" else RNG.standard_normal(shape)).astype(dtype)
    packed = runtime.pack(x, layout)
    assert packed.layout.name == layout and packed.shape == shape and packed.dtype == x.dtype
    assert not packed.on_device
    np.testing.assert_array_equal(runtime.unpack(packed), x)
    np.testing.assert_array_equal(runtime.unpack(packed.data, layout, shape, dtype=dtype), x)
    on_dev = packed.to_device()
    assert on_dev.on_device and on_dev.to_device() is on_dev
    np.testing.assert_array_equal(on_dev.numpy(), x)


def test_pack_matches_the_layout_formula() -> None:
    x = RNG.integers(-128, 128, (1, 6, 2, 5)).astype(np.int8)
    words = runtime.pack(x, "4w4c").data
    layout = Layout.from_dict("4w4c", load_manifest().layouts["4w4c"])
    raw = words.view(np.uint8)
    offsets = layout.byte_offsets(x.shape)
    np.testing.assert_array_equal(raw[offsets].view(np.int8), x)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: runtime.pack(np.zeros((1, 2, 3, 4), np.int8), "no such layout!"), ValueError, ["layout", "4w4c"]),
        (lambda: runtime.pack(np.zeros((2, 3, 4), np.int8), "4c"), ValueError, ["4-D", "(2, 3, 4)"]),
        (lambda: runtime.pack(np.zeros((1, 1, 1, 1), np.int32), "4c"), TypeError, ["int8", "int32"]),
        (lambda: runtime.pack([[1]], "4c"), TypeError, ["numpy array", "list"]),
        (lambda: runtime.unpack(np.zeros(4, np.int32)), ValueError, ["layout=", "shape="]),
        (lambda: runtime.unpack(runtime.pack(np.zeros((1, 1, 1, 1), np.int8), "4c"), "contig"), ValueError,
         ["'contig'", "'4c'"]),
        (lambda: runtime.unpack(np.zeros(1, np.int32), "4c", (1, 9, 9, 9)), ValueError, ["words", "needs"]),
    ],
)
def test_bad_arguments(call, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def _conv_args() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:  # type: ignore[type-arg]
    x = RNG.integers(-128, 128, (1, 6, 7, 5)).astype(np.int8)
    w = RNG.integers(-128, 128, (4, 6, 3, 3)).astype(np.int8)
    scales = np.full(4, 0.01, np.float32)
    q = {"x_scale": 0.05, "x_zp": 3, "out_scale": 4.0, "out_zp": -2, "padding": 1}
    return x, w, scales, q


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("where", ["host", "device"])
def test_conv2d_q8_takes_packed_input(layout: str, where: str) -> None:
    x, w, scales, q = _conv_args()
    packed = runtime.pack(x, layout)
    if where == "device":
        packed = packed.to_device()
    got = runtime.conv2d_q8(packed, w, scales, None, **q)
    if where == "device":  # a device-resident input keeps the result on the device, in 4c
        assert isinstance(got, runtime.Packed) and got.on_device and got.layout.name == "4c"
        got = got.numpy()
    want, _ = conv2d_q8_reference(x, w, scales, None, **q)
    assert np.abs(got.astype(int) - want).max() <= 1
    np.testing.assert_array_equal(got, runtime.conv2d_q8(x, w, scales, None, input_layout=layout, **q))
    with pytest.raises(ValueError, match="input_layout"):
        runtime.conv2d_q8(packed, w, scales, None, input_layout="no such layout!", **q)


def test_conv2d_float_takes_packed_input() -> None:
    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    want = runtime.conv2d_float(x, w, None, input_layout="4c")
    np.testing.assert_array_equal(runtime.conv2d_float(runtime.pack(x, "4c"), w, None), want)
    with pytest.raises(ValueError, match="dtype"):
        runtime.conv2d_float(runtime.pack(x.astype(np.float16), "4c"), w, None, dtype="float32")
    with pytest.raises(TypeError, match="int8"):
        runtime.conv2d_q8(runtime.pack(x, "4c"), w.astype(np.int8), np.ones(2, np.float32), None,
                          x_scale=1.0, x_zp=0, out_scale=1.0, out_zp=0)
