"""runtime.dwconv2d_q8 and its place in conv2d_q8: routing, defaults and picks, packed input, the
oracle against plain loops, bad arguments, the bench hook."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device, default_device
from runtime.core.manifest import load_manifest
from runtime.core.registry import implementations
from runtime.families.q8ta_conv2d.op import MAX_K, run_conv2d_q8
from runtime.families.q8ta_dwconv import oracle
from runtime.families.q8ta_dwconv.op import (
    MOBILENETV2_DW,
    DwShape,
    conv2d_q8_depthwise,
    run_dwconv2d_q8,
    time_against_im2col,
)

MANIFEST = load_manifest()
HALF = ("shaderFloat16", "storageBuffer16BitAccess")
# a GEMM variant every device runs (plain integer dot products, float32 scales)
GEMM_INT = next(n for n, e in sorted(MANIFEST.variants.items())
                if e.role == "gemm" and e.axes.get("dot") == "int" and e.axes.get("dtype") == "float32")
Kwargs = dict[str, Any]


def call(C: int = 6, *, scales: Any = np.float32, seed: int = 3, **conv: Any) -> Kwargs:
    """A valid dwconv2d_q8 call: C channels, 3x3 kernel, 2 x C x 9 x 8 input."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.integers(-128, 128, (2, C, 9, 8), dtype=np.int8),
        "weight": rng.integers(-128, 128, (C, 1, 3, 3), dtype=np.int8),
        "w_scales": rng.uniform(0.001, 0.02, C).astype(scales),
        "bias": rng.standard_normal(C).astype(scales),
        "x_scale": 0.05, "x_zp": -9, "out_scale": 0.4, "out_zp": 3, "padding": 1,
        **conv,
    }


def reference(kw: Kwargs) -> np.ndarray:
    names = ("x_scale", "x_zp", "out_scale", "out_zp", "stride", "padding", "dilation", "activation")
    q, _, _ = oracle.dwconv2d_q8_reference(kw["x"], kw["weight"], kw["w_scales"], kw["bias"],
                                           **{k: kw[k] for k in names if k in kw})
    return q


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.int8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the variants each Device.run call dispatches, in order."""
    names: list[str] = []
    real_run = Device.run

    def spy(self: Device, steps: Any, **kwargs: Any) -> Any:
        names.extend(step.pipeline.variant.name for step in steps)
        return real_run(self, steps, **kwargs)

    monkeypatch.setattr(Device, "run", spy)
    return names


# --- the op --------------------------------------------------------------------------------------


def test_op_is_public_and_matches_the_oracle() -> None:
    assert "dwconv2d_q8" in runtime.ops()
    kw = call(stride=(2, 1), dilation=(1, 2), padding=(1, 2), activation="relu")
    assert_close(runtime.dwconv2d_q8(**kw), reference(kw))


def test_default_picks_a_word_indexed_variant_for_the_default_layout() -> None:
    run = run_dwconv2d_q8(**call())
    axes = MANIFEST.variant(run.variant).axes
    assert axes["input_layout"] == "4w4c" and axes["dtype"] == "float32", run.variant


@pytest.mark.parametrize("layout", sorted(MANIFEST.layouts))
def test_packed_input_gives_the_same_output(layout: str) -> None:
    kw = call(C=7)
    want = runtime.dwconv2d_q8(**kw, input_layout=layout)
    packed = runtime.pack(kw["x"], layout)
    run = run_dwconv2d_q8(**{**kw, "x": packed})
    assert np.array_equal(run.output, want)
    accepted = MANIFEST.variant(run.variant).axes["input_layout"]
    assert accepted in ("generic", layout), run.variant
    assert_close(want, reference(kw))


def test_float16_scales_pick_a_float16_variant() -> None:
    if default_device().supports(HALF):
        pytest.skip("the default device lacks 16-bit storage or arithmetic")
    kw = call(scales=np.float16)
    run = run_dwconv2d_q8(**kw)
    assert MANIFEST.variant(run.variant).axes["dtype"] == "float16", run.variant
    assert_close(run.output, reference(kw))


def test_float16_scales_fall_back_to_float32_without_half_support() -> None:
    kw = call(scales=np.float16)
    with Device(mask_features=HALF) as dev:
        run = run_dwconv2d_q8(**kw, device=dev)
    assert MANIFEST.variant(run.variant).axes["dtype"] == "float32", run.variant
    assert_close(run.output, reference(kw))


def test_guard_bands_and_timestamps() -> None:
    run = run_dwconv2d_q8(**call(), guard=True, timestamps=True, pad_garbage=np.random.default_rng(0))
    assert run.seconds is not None and len(run.seconds) == 1 and run.seconds[0] > 0


# --- conv2d_q8 routes depthwise calls here -------------------------------------------------------


def test_family_implements_conv2d_q8() -> None:
    assert conv2d_q8_depthwise in implementations("conv2d_q8")


@pytest.mark.parametrize("conv", [
    {"stride": 1, "padding": 1},
    {"stride": 2, "padding": (0, 1), "activation": "relu"},
    {"stride": (1, 3), "padding": 2, "dilation": (2, 1), "input_layout": "contig"},
], ids=["3x3s1", "3x3s2-relu", "dilated-contig"])
def test_conv2d_q8_routes_depthwise_through_dwconv(conv: Kwargs, dispatched: list[str]) -> None:
    kw = call(C=10, **conv)
    out = runtime.conv2d_q8(**kw, groups=10)
    assert len(dispatched) == 1 and MANIFEST.variant(dispatched[0]).role == "dwconv", dispatched
    im2col_gemm = run_conv2d_q8(**kw, groups=10)
    assert [MANIFEST.variant(n).role for n in dispatched[1:]] == ["im2col", "gemm"]
    assert_close(out, im2col_gemm.output)
    assert_close(out, reference(kw))


def test_packed_input_is_routed_too(dispatched: list[str]) -> None:
    kw = call(C=8)
    out = runtime.conv2d_q8(**{**kw, "x": runtime.pack(kw["x"], "4c")}, groups=8)
    assert MANIFEST.variant(dispatched[0]).role == "dwconv", dispatched
    assert_close(out, reference(kw))


def _multiplier_2(kw: Kwargs) -> Kwargs:
    w = np.repeat(kw["weight"], 2, axis=0)
    return {**kw, "weight": w, "w_scales": np.repeat(kw["w_scales"], 2), "bias": np.repeat(kw["bias"], 2)}


@pytest.mark.parametrize(("change", "forced"), [
    (lambda kw: {**kw, "groups": 1, "weight": np.repeat(kw["weight"], 6, axis=1)}, {}),  # dense
    (lambda kw: {**_multiplier_2(kw), "groups": 6}, {}),  # depthwise multiplier 2: C_out = 2 C_in
    (lambda kw: {**kw, "groups": 6}, {"gemm_variant": GEMM_INT}),
], ids=["dense", "multiplier-2", "variant-forced"])
def test_conv2d_q8_keeps_im2col_gemm_otherwise(change: Callable[[Kwargs], Kwargs], forced: Kwargs,
                                               dispatched: list[str]) -> None:
    kw = change(call(C=6))
    runtime.conv2d_q8(**kw, **forced)
    assert [MANIFEST.variant(n).role for n in dispatched] == ["im2col", "gemm"], dispatched


@pytest.mark.parametrize("args", [
    {"groups": 6, "x": np.zeros((1, 6, 4, 4), np.float32)},  # not int8: conv2d_q8 reports it
    {"groups": 6, "weight": np.zeros((6, 2, 3, 3), np.int8)},  # not (C, 1, KH, KW)
    {"groups": 6.0},  # not an int
    {"groups": True},
    {"groups": 6, "some_new_argument": 1},  # an argument this implementation does not know
], ids=["x-float", "weight-shape", "groups-float", "groups-bool", "unknown-kwarg"])
def test_implementation_declines_what_it_does_not_serve(args: Kwargs) -> None:
    kw = {**call(C=6), **args}
    x, weight, w_scales, bias = (kw.pop(k) for k in ("x", "weight", "w_scales", "bias"))
    assert conv2d_q8_depthwise(x, weight, w_scales, bias, **kw) is NotImplemented


# --- bad arguments: a typed error naming the argument, before any GPU work --------------------------


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    default_device()  # created outside the watched calls

    def refuse(self: Device, *args: Any, **kwargs: Any) -> Any:
        pytest.fail("a call that should have been rejected on the host reached the device")

    for method in ("run", "alloc", "pipeline"):
        monkeypatch.setattr(Device, method, refuse)
    yield


def x_over_limit(C: int) -> np.ndarray:
    """A read-only int8 (1, C, side, side) of zeros, over the device's maxStorageBufferRange, backed by
    one byte (no big host allocation)."""
    side = math.isqrt(int(default_device().info.limits["maxStorageBufferRange"]) // C) + 16
    return np.broadcast_to(np.zeros((), np.int8), (1, C, side, side))


OTHER_LAYOUT_VARIANT = next(n for n, e in MANIFEST.variants.items()
                            if e.role == "dwconv" and e.axes["input_layout"] == "4c")

BAD: list[tuple[str, Callable[[Kwargs], Kwargs], type[Exception], tuple[str, ...]]] = [
    ("weight-two-per-group", lambda kw: {**kw, "weight": np.zeros((6, 2, 3, 3), np.int8)}, ValueError,
     ("weight.shape=(6, 2, 3, 3)", "(C=6, 1, KH, KW)")),
    ("weight-other-C", lambda kw: {**kw, "weight": np.zeros((5, 1, 3, 3), np.int8)}, ValueError,
     ("weight.shape=(5, 1, 3, 3)", "C=6")),
    ("weight-rank3", lambda kw: {**kw, "weight": kw["weight"][:, 0]}, ValueError, ("weight", "4 dimensions")),
    ("weight-float", lambda kw: {**kw, "weight": kw["weight"].astype(np.float32)}, TypeError, ("weight", "float32")),
    ("x-int16", lambda kw: {**kw, "x": kw["x"].astype(np.int16)}, TypeError, ("x", "int16")),
    ("x-rank3", lambda kw: {**kw, "x": kw["x"][0]}, ValueError, ("x", "4 dimensions")),
    ("w_scales-length", lambda kw: {**kw, "w_scales": np.full(5, 0.01, np.float32)}, ValueError, ("w_scales", "(6,)")),
    ("bias-nan", lambda kw: {**kw, "bias": np.full(6, np.nan, np.float32)}, ValueError, ("bias[0]", "nan")),
    ("x_zp-range", lambda kw: {**kw, "x_zp": 128}, ValueError, ("x_zp", "128")),
    ("out_scale-zero", lambda kw: {**kw, "out_scale": 0.0}, ValueError, ("out_scale", "0.0")),
    ("stride-zero", lambda kw: {**kw, "stride": 0}, ValueError, ("stride", "0")),
    ("dilation-triple", lambda kw: {**kw, "dilation": (1, 1, 1)}, TypeError, ("dilation", "(1, 1, 1)")),
    ("kernel-larger-than-input", lambda kw: {**kw, "weight": np.zeros((6, 1, 12, 3), np.int8), "padding": 1},
     ValueError, ("weight", "kernel span 12", "KH=12")),
    ("too-many-taps", lambda kw: {**kw, "x": np.zeros((1, 6, 300, 300), np.int8),
                                  "weight": np.zeros((6, 1, 257, 257), np.int8)},
     ValueError, ("weight.shape=(6, 1, 257, 257)", str(MAX_K))),
    ("x-over-limit", lambda kw: {**kw, "x": x_over_limit(6)}, ValueError, ("x needs", "maxStorageBufferRange")),
    ("activation", lambda kw: {**kw, "activation": "gelu"}, ValueError, ("activation", "'gelu'")),
    ("layout", lambda kw: {**kw, "input_layout": "no such layout!"}, ValueError,
     ("input_layout", "'no such layout!'")),
    ("packed-layout-mismatch", lambda kw: {**kw, "x": runtime.pack(kw["x"], "4c"), "input_layout": "4w4c"},
     ValueError, ("input_layout='4w4c'", "'4c'")),
    ("variant-unknown", lambda kw: {**kw, "variant": "q8ta_dwconv_nope"}, ValueError,
     ("variant='q8ta_dwconv_nope'", "no such variant")),
    ("variant-other-role", lambda kw: {**kw, "variant": GEMM_INT}, ValueError,
     (f"variant={GEMM_INT!r}", "not a dwconv variant")),
    ("variant-other-layout", lambda kw: {**kw, "variant": OTHER_LAYOUT_VARIANT}, ValueError,
     (f"variant={OTHER_LAYOUT_VARIANT!r}", "'4c'", "'4w4c'")),
    ("device", lambda kw: {**kw, "device": "gpu0"}, TypeError, ("device", "'gpu0'")),
]


@pytest.mark.parametrize(("change", "exc", "words"), [pytest.param(c, e, w, id=i) for i, c, e, w in BAD])
def test_bad_argument(change: Callable[[Kwargs], Kwargs], exc: type[Exception], words: tuple[str, ...],
                      no_gpu: None) -> None:
    with pytest.raises(exc) as err:
        runtime.dwconv2d_q8(**change(call(C=6)))
    for word in words:
        assert word in str(err.value), f"{word!r} not in {str(err.value)!r}"


# --- the oracle and the bench hook ---------------------------------------------------------------


def test_oracle_matches_plain_loops() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 5, 7), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 1, 2, 4), dtype=np.int8)
    stride, padding, dilation, x_zp = (2, 1), (1, 3), (3, 2), 11
    acc = oracle.dwconv_acc(x, w, x_zp=x_zp, stride=stride, padding=padding, dilation=dilation)
    H, W = x.shape[2:]
    want = np.zeros_like(acc)
    for n, c, ho, wo in np.ndindex(*acc.shape):
        for kh, kw in np.ndindex(2, 4):
            hi = ho * stride[0] - padding[0] + kh * dilation[0]
            wi = wo * stride[1] - padding[1] + kw * dilation[1]
            if 0 <= hi < H and 0 <= wi < W:
                want[n, c, ho, wo] += (int(x[n, c, hi, wi]) - x_zp) * int(w[c, 0, kh, kw])
    assert acc.shape == (2, 3, 2, 7) and np.array_equal(acc, want)


def test_mobilenetv2_shapes_are_depthwise_3x3() -> None:
    assert len(MOBILENETV2_DW) == 10 and len({s.name for s in MOBILENETV2_DW}) == 10
    assert all(s.K == 3 and s.stride in (1, 2) and s.H == s.W for s in MOBILENETV2_DW)
    assert {s.C for s in MOBILENETV2_DW} == {32, 96, 144, 192, 384, 576, 960}


def test_time_against_im2col_times_both_paths() -> None:
    t = time_against_im2col(DwShape("tiny", 8, 6, 6, stride=2), reps=2)
    assert t.dwconv_s > 0 and t.im2col_gemm_s > 0 and t.speedup == t.im2col_gemm_s / t.dwconv_s
    assert MANIFEST.variant(t.dwconv_variant).role == "dwconv"
    assert (MANIFEST.variant(t.im2col_variant).role, MANIFEST.variant(t.gemm_variant).role) == ("im2col", "gemm")
