"""runtime.quantize / runtime.dequantize as a user calls them: rounding and saturation by example,
every way in and out (arrays, host and device Packed), per-channel parameters, float16 served by
float32 variants where the device lacks float16, dispatches over the workgroup-count limit, and
checks that do fail on a wrong result."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device, default_device
from runtime.core.errors import MissingFeatureError
from runtime.core.manifest import load_manifest
from runtime.core.packed import Packed, pack
from runtime.core.registry import VerificationError
from runtime.families.q8ta_quantize import checks, oracle
from runtime.families.q8ta_quantize.op import QuantRun, run_quantize

HALF = ("shaderFloat16", "storageBuffer16BitAccess")
MANIFEST = load_manifest()


def _x(shape: tuple[int, ...] = (2, 5, 3, 7), dtype: Any = np.float32, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)


def test_rounding_ties_to_even_and_saturation() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3e38, -np.inf, np.inf, 126.5, 127.5, -128.5], np.float32)
    got = runtime.quantize(x.reshape(1, 1, 1, -1), 1.0, 0).ravel()
    assert got.tolist() == [0, 2, 2, 0, -2, -2, 127, -128, 127, 126, 127, -128]
    # roundEven happens before + zp: 0.5 + 1 is 1, not roundEven(1.5) = 2
    assert runtime.quantize(np.full((1, 1, 1, 1), 0.5, np.float32), 1.0, 1).item() == 1


@pytest.mark.parametrize("layout", sorted(MANIFEST.layouts))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_in_every_layout(layout: str, dtype: str) -> None:
    x = _x(dtype=dtype)
    q = runtime.quantize(x, 0.05, -3, layout=layout)
    assert q.dtype == np.int8 and q.shape == x.shape
    assert np.array_equal(q, oracle.quantize(x, 0.05, -3))
    y = runtime.dequantize(q, 0.05, -3, layout=layout, dtype=dtype)
    assert y.dtype == np.dtype(dtype) and np.array_equal(y, oracle.dequantize(q, 0.05, -3, dtype))


def test_per_channel_scale_and_zero_point() -> None:
    x = _x()
    scale = np.array([0.01, 0.1, 1.0, 0.02, 0.5], np.float32)
    zp = np.array([-128, 0, 5, 127, -1])
    q = runtime.quantize(x, scale, zp, layout="4c")
    assert np.array_equal(q, oracle.quantize(x, scale, zp))
    # a scalar broadcasts against the other's per-channel array
    assert np.array_equal(runtime.quantize(x, scale, 4), oracle.quantize(x, scale, 4))
    assert np.array_equal(runtime.dequantize(q, 0.5, zp, layout="4c"), oracle.dequantize(q, 0.5, zp))


def test_packed_in_and_out() -> None:
    x = _x()
    want = oracle.quantize(x, 0.05, 2)
    host = runtime.quantize(x, 0.05, 2, layout="4c1w", packed=True)
    assert isinstance(host, Packed) and not host.on_device and host.layout.name == "4c1w"
    assert np.array_equal(host.numpy(), want)
    # a Packed int8 tensor keeps its layout; `layout` may only repeat it
    assert np.array_equal(runtime.dequantize(host, 0.05, 2), oracle.dequantize(want, 0.05, 2))
    with pytest.raises(ValueError, match="4c1w"):
        runtime.dequantize(host, 0.05, 2, layout="4w4c")
    # a device-resident float tensor gives a device-resident int8 tensor, and back
    on_dev = runtime.quantize(pack(x, "contig").to_device(), 0.05, 2)
    assert isinstance(on_dev, Packed) and on_dev.on_device and on_dev.layout.name == "4w4c"
    floats = runtime.dequantize(on_dev, 0.05, 2)
    assert isinstance(floats, Packed) and floats.on_device and floats.layout.name == "contig"
    assert np.array_equal(floats.numpy(), oracle.dequantize(want, 0.05, 2))
    assert isinstance(runtime.dequantize(on_dev, 0.05, 2, packed=False), np.ndarray)
    assert np.array_equal(runtime.quantize(floats, 0.05, 2, packed=False), want)
    with pytest.raises(ValueError, match="plain NCHW"):
        runtime.quantize(pack(x, "4c"), 0.05, 2)


def test_float16_served_by_float32_variants_without_half_support() -> None:
    if default_device().supports(HALF):
        pytest.skip("the device lacks 16-bit float support: nothing to mask")
    x = _x(dtype=np.float16)
    with Device(mask_features=HALF) as dev:
        run = run_quantize(x, 0.05, 1, device=dev)
        assert "float32" in run.variant and np.array_equal(run.result, oracle.quantize(x, 0.05, 1))
        q = np.asarray(run.result)
        y = runtime.dequantize(q, 0.05, 1, dtype="float16", device=dev)
        assert y.dtype == np.float16 and np.array_equal(y, oracle.dequantize(q, 0.05, 1, "float16"))
        # a device-resident float16 result cannot be narrowed on the host
        on_dev = pack(q, "4w4c").to_device(dev)
        with pytest.raises(MissingFeatureError):
            runtime.dequantize(on_dev, 0.05, 1, dtype="float16", device=dev)
        with pytest.raises(ValueError, match="q is a Packed tensor on another device"):
            runtime.dequantize(on_dev, 0.05, 1)
        forced = sorted(n for n, e in MANIFEST.variants.items()
                        if e.role == "quantize" and e.axes["dtype"] == "float16" and e.axes["layout"] == "generic")
        with pytest.raises(MissingFeatureError):
            runtime.quantize(x, 0.05, 1, variant=forced[0], device=dev)


def test_more_words_than_one_dispatch_row() -> None:
    """Over maxComputeWorkGroupCount[0] * 64 words the dispatch folds into y; every word is reached."""
    limit = int(default_device().info.limits["maxComputeWorkGroupCount"][0])
    words = limit * 64 + 4096
    if words * 4 * 2 > int(default_device().info.limits["maxStorageBufferRange"]):
        pytest.skip("the buffers would exceed maxStorageBufferRange")
    x = np.random.default_rng(3).standard_normal((1, 4, 1, words)).astype(np.float16)
    variant = next(n for n, e in MANIFEST.variants.items() if e.role == "quantize" and e.axes["layout"] == "4c"
                   and e.axes["dtype"] == "float16" and e.local_size[0] == 64 and e.axes["quant"] == "per_tensor")
    got = runtime.quantize(x, 0.01, 0, layout="4c", variant=variant)
    assert np.array_equal(got, oracle.quantize(x, 0.01, 0))


def _case(**changes: Any) -> dict[str, Any]:
    base = dict(N=1, C=6, H=3, W=5, layout="4w4c", quant="per_tensor", values="span", scale_mode="unit",
                zp_mode="random", residency="array", seed=7)
    return {**base, **changes}


def test_the_quantize_check_fails_on_an_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.run_quantize

    def off_by_one(*args: Any, **kwargs: Any) -> QuantRun:
        run = real(*args, **kwargs)
        assert isinstance(run.result, Packed)
        q = run.result.numpy()
        q[0, 2, 1, 3] = q[0, 2, 1, 3] + (1 if q[0, 2, 1, 3] < 127 else -1)
        return QuantRun(pack(q, run.result.layout), run.variant)

    monkeypatch.setattr(checks, "run_quantize", off_by_one)
    with pytest.raises(VerificationError, match=r"1 of 90 elements wrong; first at \(0, 2, 1, 3\)"):
        checks.check_quantize("q8ta_quantize_float32_wg64_4w4c_per_tensor", _case(), None)


def test_the_quantize_check_fails_on_an_unwritten_padding_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.run_quantize

    def dirty(*args: Any, **kwargs: Any) -> QuantRun:
        run = real(*args, **kwargs)
        assert isinstance(run.result, Packed)
        words = run.result.host_words().copy()
        words[0] |= 0x7F000000  # byte 3 of word 0: channel 3, absent when C = 3
        return QuantRun(Packed(words, run.result.layout, run.result.shape, run.result.dtype), run.variant)

    monkeypatch.setattr(checks, "run_quantize", dirty)
    with pytest.raises(VerificationError, match="padding bytes must be 0"):
        checks.check_quantize("q8ta_quantize_float32_wg64_4w4c_per_tensor", _case(C=3), None)


def test_the_dequantize_check_fails_on_one_ulp_too_far(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.run_dequantize

    def nudged(*args: Any, **kwargs: Any) -> QuantRun:
        run = real(*args, **kwargs)
        y = np.asarray(run.result).copy()
        y[0, 1, 0, 0] = np.nextafter(np.nextafter(y[0, 1, 0, 0], np.float32(np.inf)), np.float32(np.inf))
        return QuantRun(y, run.variant)

    monkeypatch.setattr(checks, "run_dequantize", nudged)
    case = _case(values="random", packed_out=False)
    with pytest.raises(VerificationError, match=r"first at \(0, 1, 0, 0\)"):
        checks.check_dequantize("q8ta_dequantize_float32_wg64_4w4c_per_tensor", case, None)


def test_a_rounding_device_uses_no_tolerance() -> None:
    """On lavapipe (IEEE division, round to nearest, subnormals kept) every element equals the oracle's
    round-to-nearest value: the windows are there for other devices, not to hide a mismatch here."""
    if "llvmpipe" not in default_device().info.name:
        pytest.skip("rounding behaviour known for lavapipe only")
    checks.TOLERANCE.clear()
    variant = "q8ta_quantize_float32_wg64_generic_per_tensor"
    for seed in range(8):
        checks.check_quantize(variant, _case(values="ties", scale_mode="unit", seed=seed, H=16, W=16), None)
        checks.check_quantize(variant, _case(values="subnormal", scale_mode="bounds", seed=seed), None)
    assert checks.TOLERANCE[("quantize", variant, "window")] > 0
    assert checks.TOLERANCE[("quantize", variant, "used")] == 0
