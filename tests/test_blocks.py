"""Real blocks end to end on the device (examples/): a MobileNetV2 inverted residual and a ResNet basic
block with every intermediate kept packed on the device, checked stage by stage against the families'
oracles; and the device-resident results of conv2d_q8 / dwconv2d_q8 they are built on (where the
result goes, its layout, what it costs in device memory)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import runtime
from examples import blocks
from examples.blocks import Block, Verdict
from examples.mobilenet_block import main as mobilenet_main
from examples.mobilenet_block import mobilenet_block
from examples.resnet_block import main as resnet_main
from examples.resnet_block import resnet_block
from runtime.core.buffers import Buffer
from runtime.core.device import default_device
from runtime.core.packed import Packed, pack
from runtime.families.q8ta_binary import oracle as binary_oracle
from runtime.families.q8ta_binary.op import run_binary
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.families.q8ta_dwconv.op import run_dwconv2d_q8

QUANT = {"x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2}


def _conv_args(rng: np.random.Generator, c_in: int, c_out: int, k: int, groups: int) -> tuple[np.ndarray, ...]:
    weight = rng.integers(-128, 128, (c_out, c_in // groups, k, k), dtype=np.int8)
    return weight, rng.uniform(0.001, 0.02, c_out).astype(np.float32), rng.standard_normal(c_out).astype(np.float32)


def _live_buffers() -> int:
    gc.collect()
    return default_device().live_objects()["buffers"]


# --- conv2d_q8 / dwconv2d_q8: where the result goes ---------------------------------------------------


@pytest.mark.parametrize(("c_in", "c_out", "k", "groups"), [
    (5, 9, 3, 1),  # im2col + GEMM, the GEMM's buffer is the 4c result
    (6, 8, 3, 2),  # grouped: group-major GEMM words, through the host once
    (7, 7, 3, 7),  # depthwise: served by q8ta_dwconv's direct kernel
])
@pytest.mark.parametrize("layout", ["4c", "4w4c", "4c1w"])
def test_conv2d_q8_result_follows_x_and_packed(c_in: int, c_out: int, k: int, groups: int, layout: str) -> None:
    rng = np.random.default_rng(c_in * 10 + groups)
    x = rng.integers(-128, 128, (2, c_in, 5, 7), dtype=np.int8)
    args = (*_conv_args(rng, c_in, c_out, k, groups),)
    kw: dict[str, Any] = {**QUANT, "padding": 1, "groups": groups, "activation": "relu"}
    want = runtime.conv2d_q8(x, *args, **kw)
    assert isinstance(want, np.ndarray) and want.shape == (2, c_out, 5, 7)
    on_host, on_device = pack(x, layout), pack(x, layout).to_device()
    # (x, packed, where the result is: "array", "host" (a host Packed) or "device")
    expected: list[tuple[Any, bool | None, str]] = [
        (on_device, None, "device"), (on_device, True, "device"), (on_device, False, "array"),
        (x, None, "array"), (x, True, "host"), (x, False, "array"), (on_host, None, "array"), (on_host, True, "host"),
    ]
    for given, packed, where in expected:
        got = runtime.conv2d_q8(given, *args, packed=packed, **kw)
        if where == "array":
            assert isinstance(got, np.ndarray) and np.array_equal(got, want), (layout, packed)
            continue
        assert isinstance(got, Packed) and got.on_device == (where == "device"), (layout, packed, got)
        assert got.layout.name == "4c" and got.shape == want.shape and got.dtype == np.int8
        assert np.array_equal(got.numpy(), want), (layout, packed)
        # the documented layout, word for word: 4c of (N, C_out, H_out, W_out)
        assert np.array_equal(got.host_words(), pack(want, "4c").data)


def test_dwconv2d_q8_result_follows_x_and_packed() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 10, 6, 9), dtype=np.int8)
    weight = rng.integers(-128, 128, (10, 1, 3, 3), dtype=np.int8)
    w_scales, bias = rng.uniform(0.001, 0.02, 10).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    kw: dict[str, Any] = {**QUANT, "padding": 1, "stride": 2}
    want = runtime.dwconv2d_q8(x, weight, w_scales, bias, **kw)
    xd = pack(x, "4w4c").to_device()
    got = runtime.dwconv2d_q8(xd, weight, w_scales, bias, **kw)
    assert isinstance(got, Packed) and got.on_device and got.layout.name == "4c"
    assert np.array_equal(got.numpy(), want)
    host = runtime.dwconv2d_q8(x, weight, w_scales, bias, packed=True, **kw)
    assert isinstance(host, Packed) and not host.on_device and np.array_equal(host.numpy(), want)
    assert isinstance(runtime.dwconv2d_q8(xd, weight, w_scales, bias, packed=False, **kw), np.ndarray)
    # the run_* entry keeps its array view for tests and the bench
    run = run_dwconv2d_q8(xd, weight, w_scales, bias, guard=True, **kw)
    assert isinstance(run.result, Packed) and np.array_equal(run.output, want)


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_a_device_result_owns_one_buffer_and_the_call_frees_the_rest(groups: int) -> None:
    """While a device-resident result lives the call holds exactly one buffer more (the result's own:
    im2col matrix, weights, scales and metadata are gone); once the result is dropped, none."""
    rng = np.random.default_rng(groups)
    x = pack(rng.integers(-128, 128, (1, 8, 6, 6), dtype=np.int8), "4c").to_device()
    args = _conv_args(rng, 8, 8, 3, groups)
    kw: dict[str, Any] = {**QUANT, "padding": 1, "groups": groups}
    runtime.conv2d_q8(x, *args, **kw)  # pipelines and descriptor pools are made once
    before = _live_buffers()
    result = runtime.conv2d_q8(x, *args, **kw)
    assert isinstance(result, Packed) and result.on_device
    assert _live_buffers() == before + 1
    words = result.host_words()
    del result
    assert _live_buffers() == before
    # a guarded run through the op's run_* entry: the same, guard bands included
    if groups == 8:
        del kw["groups"]
        run: Any = run_dwconv2d_q8(x, *args, guard=True, **kw)
    else:
        run = run_conv2d_q8(x, *args, guard=True, **kw)
    assert _live_buffers() == before + 1 and np.array_equal(run.result.host_words(), words)
    del run
    assert _live_buffers() == before


def test_bad_packed_and_a_tensor_on_another_device() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 4, 5, 5), dtype=np.int8)
    args = _conv_args(rng, 4, 4, 3, 1)
    with pytest.raises(TypeError, match="packed"):
        runtime.conv2d_q8(x, *args, packed=1, **QUANT)
    with pytest.raises(TypeError, match="packed"):
        runtime.dwconv2d_q8(x, args[0][:, :1], args[1], args[2], packed="yes", **QUANT)
    other = runtime.Device()
    try:
        elsewhere = pack(x, "4c").to_device(other)
        with pytest.raises(ValueError, match="another device"):
            runtime.conv2d_q8(elsewhere, *args, **QUANT)
        with pytest.raises(ValueError, match="another device"):
            runtime.dwconv2d_q8(elsewhere, args[0][:, :1], args[1], args[2], **QUANT)
    finally:
        other.close()


def test_add_of_two_4c_tensors_takes_the_4c_variant_and_mixed_layouts_the_generic_one() -> None:
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-128, 128, (2, 7, 3, 5), dtype=np.int8) for _ in range(2))
    kw: dict[str, Any] = {"a_scale": 0.04, "a_zp": -3, "b_scale": 0.07, "b_zp": 5, "out_scale": 0.09, "out_zp": 1}
    want = binary_oracle.binary_q8(a, b, "add", **kw)
    for b_layout, variant in (("4c", "_4c_"), ("4w4c", "_generic_")):
        run = run_binary("add", pack(a, "4c").to_device(), pack(b, b_layout).to_device(), **kw)
        assert variant in run.variant, run.variant
        assert isinstance(run.result, Packed) and run.result.on_device and run.result.layout.name == "4c"
        assert np.array_equal(run.result.numpy(), want)


# --- the blocks -----------------------------------------------------------------------------------


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every host read of a device buffer from here on, by size (Buffer.read is the only way back)."""
    seen: list[int] = []
    original = Buffer.read

    def counting(self: Buffer, dtype: Any = np.uint8) -> np.ndarray:
        seen.append(self.nbytes)
        return original(self, dtype)

    monkeypatch.setattr(Buffer, "read", counting)
    yield seen


def _assert_resident_and_right(block: Block, x: np.ndarray, layout: str, reads: list[int]) -> None:
    xp = pack(x, layout).to_device()
    before = _live_buffers()
    reads.clear()
    tensors = block.run(xp)
    assert reads == [], f"the block read {len(reads)} buffers back from the device ({reads} bytes)"
    for s in block.stages:
        assert _resident_4c(tensors[s.name]), (s.name, tensors[s.name])
    # every stage's output is alive in `tensors`, and nothing else the block allocated is
    assert _live_buffers() == before + len(block.stages)
    verdicts = blocks.check(block, tensors)
    assert reads, "reading the results back must show in the count (else the no-readback check proves nothing)"
    failed = {name: v.problem for name, v in verdicts.items() if v.problem is not None}
    assert not failed, failed
    assert tensors[block.output].shape == x.shape
    del tensors
    assert _live_buffers() == before


def _resident_4c(t: Any) -> bool:
    return isinstance(t, Packed) and t.on_device and t.layout.name == "4c"


# x packed in 4c: every tensor of the block is 4c (the add takes its 4c variant); in 4w4c: the first conv
# reads 4w4c, the residual add gets a 4c and a 4w4c tensor (its generic variant)
@pytest.mark.parametrize(("channels", "expand", "size", "batch", "layout"), [
    (5, 3, (7, 9), 2, "4c"),  # odd everything: channels not a multiple of 4, W not of 4, N > 1
    (5, 3, (7, 9), 2, "4w4c"),
    (3, 1, (1, 5), 1, "4w4c"),  # no expansion, one row
    (24, 6, (56, 56), 1, "4c"),  # MobileNetV2's third stage, 24 -> 144 -> 24 at 56 x 56
])
def test_mobilenet_block_on_the_device(channels: int, expand: int, size: tuple[int, int], batch: int, layout: str,
                                       reads: list[int]) -> None:
    block, x = mobilenet_block(channels, expand, size, batch=batch, seed=channels)
    assert [type(s.op).__name__ for s in block.stages] == ["Conv", "Conv", "Conv", "Add"]
    _assert_resident_and_right(block, x, layout, reads)


@pytest.mark.parametrize(("channels", "size", "batch", "layout"), [
    (6, (5, 7), 2, "4c"),
    (6, (5, 7), 2, "4w4c"),
    (9, (3, 3), 1, "4c1w"),
    (64, (56, 56), 1, "4c"),  # ResNet-18/34's first stage, 64 channels at 56 x 56
])
def test_resnet_block_on_the_device(channels: int, size: tuple[int, int], batch: int, layout: str,
                                    reads: list[int]) -> None:
    block, x = resnet_block(channels, size, batch=batch, seed=channels)
    _assert_resident_and_right(block, x, layout, reads)


def test_the_block_check_catches_one_wrong_element() -> None:
    block, x = mobilenet_block(5, 3, (6, 7), seed=1)
    tensors: dict[str, Any] = {name: t.numpy() for name, t in block.run(pack(x, "4c").to_device()).items()}
    assert all(v.problem is None for v in blocks.check(block, tensors).values())
    for name in ("depthwise", "residual"):
        wrong = dict(tensors)
        wrong[name] = tensors[name].copy()
        wrong[name][0, 1, 2, 3] ^= 2  # off by 2: never a tie
        verdicts = blocks.check(block, wrong)
        assert isinstance(verdicts[name], Verdict) and verdicts[name].problem, name
        # the stages before it are untouched (a later one sees its input change and may fail too)
        earlier = [verdicts[s.name].problem for s in block.stages[: [t.name for t in block.stages].index(name)]]
        assert earlier == [None] * len(earlier), (name, earlier)


def test_block_runs_the_same_op_by_op_on_the_host() -> None:
    block, x = resnet_block(7, (4, 6), batch=2, seed=3)
    host = block.run(x)
    assert all(isinstance(t, np.ndarray) for t in host.values())
    assert all(v.problem is None for v in blocks.check(block, host).values())
    # calibration covers the real range of every stage: the outputs use most of int8
    for s in block.stages:
        out = host[s.name]
        assert isinstance(out, np.ndarray) and int(out.max()) - int(out.min()) > 128, s.name


@pytest.mark.parametrize("main", [mobilenet_main, resnet_main])
def test_the_examples_run(main: Any, capsys: pytest.CaptureFixture[str]) -> None:
    small = ["--channels", "5", "--size", "7", "--reps", "1"]
    assert main(small) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "Packed on the device" in out and "median of 1" in out
    with pytest.raises(SystemExit):
        main([*small[:4], "--reps", "0"])
