"""A device without a feature a variant needs: forcing that variant gives a typed MissingFeatureError
naming the feature, and the automatic choice falls back to a variant that runs (and is right).

The missing features are simulated with ``Device(mask_features=[...])`` on the CI device (lavapipe has
them all); every Device made here is closed by its ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device, default_device
from runtime.core.errors import MissingFeatureError
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference

DOT = "shaderIntegerDotProduct"
HALF = ("shaderFloat16", "storageBuffer16BitAccess")
# where a device has tensor cores, their variants (float32 scales only, no `dot` axis) rank above every
# other: the choices among the others are pinned with them masked
TENSOR_CORES = ("cooperativeMatrixNV",)
MANIFEST = load_manifest()


def gemm_variants(*, dot: str | None = None, dtype: str | None = None) -> list[str]:
    return sorted(
        n for n, v in MANIFEST.variants.items()
        if v.role == "gemm" and (dot is None or v.axes.get("dot") == dot)
        and (dtype is None or v.axes.get("dtype") == dtype)
    )


def case(scale_dtype: Any = np.float32, *, groups: int = 1, activation: str = "relu") -> dict[str, Any]:
    rng = np.random.default_rng(5)
    c_in, c_out = 8, 12
    return {
        "x": rng.integers(-128, 128, (2, c_in, 7, 6), dtype=np.int8),
        "weight": rng.integers(-128, 128, (c_out, c_in // groups, 3, 3), dtype=np.int8),
        "w_scales": rng.uniform(0.001, 0.02, c_out).astype(scale_dtype),
        "bias": rng.standard_normal(c_out).astype(scale_dtype),
        "x_scale": 0.05, "x_zp": -7, "out_scale": 2.0, "out_zp": 5,
        "stride": (1, 2), "padding": 1, "groups": groups, "activation": activation,
    }


def assert_matches_reference(out: np.ndarray, kwargs: dict[str, Any]) -> None:
    want, _ = conv2d_q8_reference(**kwargs)
    diff = np.abs(out.astype(np.int16) - want.astype(np.int16))
    assert out.shape == want.shape and diff.max() <= 1, f"max |diff| {diff.max()}"


def without_tensor_cores(*features: str) -> Device:
    """The default device with `features` masked, and its tensor cores where it has them."""
    present = [f for f in TENSOR_CORES if not default_device().supports((f,))]
    return Device(mask_features=[*features, *present])


def require(*features: str) -> None:
    missing = default_device().supports(features)
    if missing:
        pytest.skip(f"device {default_device().info.name!r} lacks {missing}: nothing to mask")


@pytest.fixture(scope="module")
def no_dot() -> Iterator[Device]:
    require(DOT)
    with Device(mask_features=[DOT]) as dev:
        yield dev


@pytest.fixture(scope="module", params=[HALF[:1], HALF[1:], HALF], ids=lambda m: "+".join(m))
def no_half(request: pytest.FixtureRequest) -> Iterator[Device]:
    require(*HALF)
    with Device(mask_features=request.param) as dev:
        yield dev


@pytest.fixture
def no_submission(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Device.run / alloc fail the test: a refused variant must be refused before any GPU work."""
    calls: list[str] = []

    def refuse(method: str) -> Any:
        def refused(self: Device, *args: Any, **kwargs: Any) -> Any:
            calls.append(method)
            pytest.fail(f"Device.{method} called although the forced variant cannot run")
        return refused

    for method in ("run", "alloc"):
        monkeypatch.setattr(Device, method, refuse(method))
    return calls


# -- integer dot product ----------------------------------------------------------------------------
def test_masked_device_reports_the_feature_missing(no_dot: Device) -> None:
    assert no_dot.supports([DOT]) == [DOT]
    assert not no_dot.info.features[DOT]
    assert default_device().supports([DOT]) == []


@pytest.mark.parametrize("variant", gemm_variants(dot="dot", dtype="float32"))
def test_forced_dot_variant_raises_missing_feature(no_dot: Device, variant: str, no_submission: list[str]) -> None:
    with pytest.raises(MissingFeatureError) as err:
        runtime.conv2d_q8(**case(), gemm_variant=variant, device=no_dot)
    assert err.value.feature == DOT and err.value.variant == variant
    assert DOT in str(err.value) and variant in str(err.value)
    assert not isinstance(err.value, ValueError), "a device fault is not a bad argument"
    assert not no_submission


@pytest.mark.parametrize("groups", [1, 4])
def test_auto_choice_falls_back_to_int_variant(no_dot: Device, groups: int) -> None:
    kwargs = case(groups=groups)
    run = run_conv2d_q8(**kwargs, device=no_dot)
    entry = MANIFEST.variants[run.gemm_variant]
    assert DOT not in entry.features
    # the plain-integer fallback (a tensor-core variant would also do, where the device has one)
    assert "_int_" in run.gemm_variant or "coop" in entry.axes, run.gemm_variant
    assert_matches_reference(run.output, kwargs)
    # the public op takes the same path
    assert_matches_reference(runtime.conv2d_q8(**kwargs, device=no_dot), kwargs)


def test_unmasked_device_prefers_a_packed_dot_mode() -> None:
    require(DOT)
    kwargs = case()
    with without_tensor_cores() as dev:
        run = run_conv2d_q8(**kwargs, device=dev)
    assert load_manifest().variant(run.gemm_variant).axes["dot"] in ("dot", "sdot"), run.gemm_variant
    assert_matches_reference(run.output, kwargs)


def test_pipeline_creation_refuses_masked_feature_too(no_dot: Device) -> None:
    """Second line of defence: even a direct pipeline request for a dot variant is refused."""
    name = gemm_variants(dot="dot", dtype="float32")[0]
    before = no_dot.live_objects()
    with pytest.raises(MissingFeatureError, match=DOT):
        no_dot.pipeline(MANIFEST.variants[name], {"ACTIVATION": 0})
    assert no_dot.live_objects() == before, "a refused pipeline left objects behind"


# -- float16 scales -----------------------------------------------------------------------------------
def test_float16_scales_pick_a_float16_variant() -> None:
    require(*HALF)
    kwargs = case(np.float16)
    with without_tensor_cores() as dev:
        run = run_conv2d_q8(**kwargs, device=dev)
    assert MANIFEST.variants[run.gemm_variant].axes["dtype"] == "float16", run.gemm_variant
    assert_matches_reference(run.output, kwargs)


def test_float16_scales_fall_back_to_float32_variant(no_half: Device) -> None:
    """Without 16-bit support, float16 scales widen exactly to float32: same results, no error."""
    kwargs = case(np.float16)
    run = run_conv2d_q8(**kwargs, device=no_half)
    entry = MANIFEST.variants[run.gemm_variant]
    assert entry.axes["dtype"] == "float32", run.gemm_variant
    assert not no_half.supports(entry.features)
    assert_matches_reference(run.output, kwargs)


def test_forced_float16_variant_names_the_missing_feature(no_half: Device, no_submission: list[str]) -> None:
    masked = [f for f in HALF if not no_half.info.features[f]]
    for variant in gemm_variants(dot="int", dtype="float16"):
        with pytest.raises(MissingFeatureError) as err:
            runtime.conv2d_q8(**case(np.float16), gemm_variant=variant, device=no_half)
        assert err.value.feature in masked and err.value.feature in str(err.value)
        assert err.value.variant == variant
    assert not no_submission


def test_both_masked_falls_back_to_float32_int() -> None:
    require(DOT, *HALF)
    kwargs = case(np.float16, groups=2, activation="none")
    with without_tensor_cores(DOT, *HALF) as dev:
        run = run_conv2d_q8(**kwargs, device=dev)
        assert_matches_reference(run.output, kwargs)
    axes = MANIFEST.variants[run.gemm_variant].axes
    assert (axes["dot"], axes["dtype"]) == ("int", "float32"), run.gemm_variant
    assert dev.closed and dev.live_objects()["tracked"] == 0


def test_float32_bias_with_float16_scales_uses_float32_storage() -> None:
    """A float32 bias is not squeezed into float16 storage (1e5 would overflow it)."""
    kwargs = case(np.float16)
    kwargs["bias"] = np.full(12, 1e5, np.float32)
    kwargs["out_scale"] = 1000.0
    run = run_conv2d_q8(**kwargs)
    assert MANIFEST.variants[run.gemm_variant].axes["dtype"] == "float32", run.gemm_variant
    assert_matches_reference(run.output, kwargs)
