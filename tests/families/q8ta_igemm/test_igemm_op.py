"""runtime.igemm_conv2d_q8 and its place in conv2d_q8: the op against the oracle, picks, packed input and
results, the K split, routing by the tuning cache and by the heuristic, what the implementation
declines, bad arguments, the oracle against plain loops, and the GPU timing script's pieces."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core import tuning
from runtime.core.device import Device, default_device
from runtime.core.manifest import load_manifest
from runtime.core.registry import implementations
from runtime.core.select import unrunnable
from runtime.families.q8ta_conv2d.op import conv_geometry, run_conv2d_q8
from runtime.families.q8ta_igemm import op as igemm_op
from runtime.families.q8ta_igemm import oracle, selection
from runtime.families.q8ta_igemm.__main__ import main as timing_main
from runtime.families.q8ta_igemm.op import (
    K_SPLIT_FILL,
    K_SPLIT_THREADS,
    MIN_STEPS_PER_SPLIT,
    SPLIT_LADDER,
    entry_weight_bytes,
    entry_weights,
    gather_facts,
    igemm_entry,
    k_step,
    run_igemm_conv2d_q8,
    split_counts,
    split_plan,
)
from runtime.families.q8ta_igemm.selection import (
    IMPL_KEY,
    PAIR,
    conv2d_q8_igemm,
    impl_class,
    prefer_igemm,
    split_choice,
)
from runtime.families.q8ta_igemm.timing import ConvLayer, time_layer
from runtime.oplib.gemm_formats import pack_weights_q8
from tests.fake_gpu import H100_LIMITS
from tests.families.q8ta_dwconv.test_dwconv_op import x_over_limit

MANIFEST = load_manifest()
IGEMM = MANIFEST.entries(role="igemm")
STAGED = next(e.name for e in IGEMM if e.axes.get("stage") is True and e.axes["input_layout"] == "4w4c"
              and e.axes["dot"] == "int")
UNSTAGED = next(e.name for e in IGEMM if e.axes.get("stage") is False and e.axes["input_layout"] == "4w4c"
                and e.axes["dot"] == "int")
OTHER_LAYOUT = next(e.name for e in IGEMM if e.axes.get("input_layout") == "4c" and "dot" in e.axes)
GEMM_INT = next(n for n, e in sorted(MANIFEST.variants.items())
                if e.role == "gemm" and e.axes.get("dot") == "int" and e.axes.get("dtype") == "float32")
Kwargs = dict[str, Any]


def call(C_in: int = 8, C_out: int = 12, *, groups: int = 1, K: int = 3, seed: int = 5, scales: Any = np.float32,
         **conv: Any) -> Kwargs:
    """A valid conv2d_q8 call: 2 x C_in x 9 x 8 input, K x K kernel, 'same' padding unless given."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.integers(-128, 128, (2, C_in, 9, 8), dtype=np.int8),
        "weight": rng.integers(-128, 128, (C_out, C_in // groups, K, K), dtype=np.int8),
        "w_scales": rng.uniform(0.001, 0.02, C_out).astype(scales),
        "bias": rng.standard_normal(C_out).astype(scales),
        "x_scale": 0.05, "x_zp": -9, "out_scale": 0.4, "out_zp": 3, "padding": K // 2, "groups": groups,
        **conv,
    }


def reference(kw: Kwargs) -> np.ndarray:
    names = ("x_scale", "x_zp", "out_scale", "out_zp", "stride", "padding", "dilation", "groups", "activation")
    q, _, _ = oracle.conv2d_q8_reference(kw["x"], kw["weight"], kw["w_scales"], kw["bias"],
                                         **{k: kw[k] for k in names if k in kw})
    return q


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.int8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def geometry(kw: Kwargs) -> Any:
    return conv_geometry(kw["x"].shape, kw["weight"], stride=kw.get("stride", 1), padding=kw.get("padding", 0),
                         dilation=kw.get("dilation", 1), groups=kw.get("groups", 1))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tuning caches go to tmp_path, never into the developer's build/tuning."""
    monkeypatch.setattr(tuning, "cache_path", lambda manifest, name: tmp_path / f"{tuning.slug(name)}.json")
    monkeypatch.delenv(tuning.ENV, raising=False)
    return tmp_path


def record_verdict(kw: Kwargs, choice: tuning.Choice) -> None:
    dev = default_device()
    cache = tuning.load(dev, MANIFEST).copy()
    cache.record(IMPL_KEY, impl_class(geometry(kw)), choice)
    cache.save()


def roles(names: list[str]) -> list[str]:
    return [MANIFEST.variant(n).role for n in names]


# --- the op --------------------------------------------------------------------------------------


def test_op_is_public_and_matches_the_oracle() -> None:
    assert "igemm_conv2d_q8" in runtime.ops()
    kw = call(C_in=10, C_out=6, groups=2, stride=(2, 1), dilation=(1, 2), padding=(1, 2), activation="relu")
    assert_close(runtime.igemm_conv2d_q8(**kw), reference(kw))


def test_default_pick_reads_the_default_layout_with_packed_dot_products() -> None:
    run = run_igemm_conv2d_q8(**call())
    axes = MANIFEST.variant(run.variant).axes
    assert axes["input_layout"] == "4w4c", run.variant
    if not default_device().supports(["shaderIntegerDotProduct"]):
        assert axes.get("dot") in ("sdot", "dot") or isinstance(axes.get("coop"), dict), run.variant


def test_emulated_tensor_cores_are_never_picked() -> None:
    emulated = [e.name for e in IGEMM if isinstance(e.axes.get("coop"), str)]
    assert emulated, "the emulated twin of the tensor-core template is gone"
    for layout in sorted(MANIFEST.layouts):
        kw = call(C_in=64, C_out=64)
        entry = igemm_entry(MANIFEST, default_device(), layout, geometry(kw), "float32", None)
        assert entry.name not in emulated


@pytest.mark.parametrize("layout", sorted(MANIFEST.layouts))
def test_packed_input_gives_the_same_output(layout: str) -> None:
    kw = call(C_in=7, C_out=5)
    want = runtime.igemm_conv2d_q8(**kw, input_layout=layout)
    run = run_igemm_conv2d_q8(**{**kw, "x": runtime.pack(kw["x"], layout)}, packed=False)
    assert np.array_equal(run.output, want)
    assert MANIFEST.variant(run.variant).axes["input_layout"] in ("generic", layout), run.variant
    assert_close(want, reference(kw))


def test_packed_result_is_the_4c_layout_and_stays_on_a_device_input() -> None:
    kw = call()
    host = runtime.igemm_conv2d_q8(**kw, packed=True)
    assert isinstance(host, runtime.Packed) and host.layout.name == "4c" and not host.on_device
    assert np.array_equal(runtime.unpack(host), runtime.igemm_conv2d_q8(**kw))
    on_device = runtime.pack(kw["x"], "4w4c").to_device()
    resident = runtime.igemm_conv2d_q8(**{**kw, "x": on_device})
    assert isinstance(resident, runtime.Packed) and resident.on_device
    assert np.array_equal(resident.numpy(), runtime.unpack(host))


def test_float16_scales_are_served_by_float32_storage() -> None:
    kw = call(scales=np.float16)
    run = run_igemm_conv2d_q8(**kw)
    assert MANIFEST.variant(run.variant).axes["dtype"] == "float32"
    assert_close(run.output, reference(kw))


def test_guard_bands_timestamps_and_garbage() -> None:
    run = run_igemm_conv2d_q8(**call(), guard=True, timestamps=True, pad_garbage=np.random.default_rng(0))
    assert run.seconds is not None and len(run.seconds) == 1 and run.seconds[0] > 0


@pytest.mark.parametrize("size", [4, 16])
def test_weight_bytes_are_those_the_variant_gets(size: int) -> None:
    name = next(e.name for e in IGEMM if e.binding(2).element_size == size)
    for c_in, groups in ((7, 1), (64, 1), (10, 2), (36, 3)):
        kw = call(C_in=c_in, C_out=6, groups=groups)
        g = geometry(kw)
        w_words, _ = pack_weights_q8(kw["weight"], g.groups)
        packed = entry_weights(MANIFEST.variant(name), w_words, g)
        assert packed.nbytes == entry_weight_bytes(MANIFEST.variant(name), g), (name, c_in, groups)


# --- the gather's specialization -----------------------------------------------------------------

GATHERING = [e.name for e in IGEMM if k_step(e) and e.spec_constant("GATHER_FACTS") is not None]


def facts_call(kc: int, one_tap: bool, whole: bool) -> Kwargs:
    """A grouped conv whose K steps of `kc` words do (not) lie in one tap and whose groups do (not)
    start on channel words."""
    # Cg4 == kc: one tap a K step; Cg % 4 == 2 with 2 groups: groups start mid-word
    cg = {(True, True): 4 * kc, (True, False): 4 * kc - 2, (False, True): 4 * kc + 4, (False, False): 5}[one_tap, whole]
    groups = 1 if whole else 2
    return call(C_in=cg * groups, C_out=6, groups=groups, seed=cg)


def test_gather_facts_follow_the_geometry() -> None:
    entry = MANIFEST.variant(GATHERING[0])
    kc = k_step(entry)
    for one_tap, whole in itertools.product((False, True), repeat=2):
        facts = gather_facts(entry, geometry(facts_call(kc, one_tap, whole)))
        assert facts == int(one_tap) | int(whole) << 1, (one_tap, whole)
    assert gather_facts(MANIFEST.variant(UNSTAGED), geometry(call())) is None


@pytest.mark.parametrize("name", GATHERING)
def test_specialized_gather_matches_the_tested_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = MANIFEST.variant(name)
    if reason := unrunnable(entry, default_device()):
        pytest.skip(f"{name}: {reason}")
    layout = entry.axes["input_layout"]
    for one_tap, whole in itertools.product((False, True), repeat=2):
        kw = {**facts_call(k_step(entry), one_tap, whole), **({} if layout == "generic" else {"input_layout": layout})}
        specialized = run_igemm_conv2d_q8(**kw, variant=name).output
        with monkeypatch.context() as m:
            m.setattr(igemm_op, "gather_facts", lambda entry, geom: None)  # GATHER_FACTS -1: tested per step
            tested = run_igemm_conv2d_q8(**kw, variant=name).output
        assert np.array_equal(specialized, tested), (name, one_tap, whole)
        assert_close(specialized, reference(kw))


# --- the K split ---------------------------------------------------------------------------------


@pytest.mark.parametrize("split_k", [1, 2, 5, 10_000])
def test_split_k_changes_nothing_but_the_split(split_k: int) -> None:
    kw = call(C_in=64, C_out=20)
    run = run_igemm_conv2d_q8(**kw, variant=STAGED, split_k=split_k)
    steps = -(-geometry(kw).K4 // k_step(MANIFEST.variant(STAGED)))
    assert run.splits == min(split_k, steps)
    assert_close(run.output, reference(kw))
    again = run_igemm_conv2d_q8(**kw, variant=STAGED, split_k=split_k)  # the tile counts were left zeroed
    assert np.array_equal(again.output, run.output)


def test_split_plan_on_a_gpu_fills_it_and_keeps_whole_k_steps() -> None:
    entry = MANIFEST.variant(STAGED)
    gpu = SimpleNamespace(info=SimpleNamespace(device_type="discrete-gpu", limits={"maxStorageBufferRange": 1 << 31}))
    step = k_step(entry)
    for kw in (call(C_in=512, C_out=64, K=3), call(C_in=64, C_out=64, K=1), call(C_in=13, C_out=5)):
        g = geometry(kw)
        plan = split_plan(gpu, entry, g)  # type: ignore[arg-type]
        tiles = -(-g.M // 64) * -(-g.OCg // 64)
        assert plan.per_split % step == 0 or plan.splits == 1
        assert plan.splits * plan.per_split >= g.K4 > (plan.splits - 1) * plan.per_split
        assert (plan.splits > 1) == (tiles < K_SPLIT_FILL and -(-g.K4 // step) >= 2 * MIN_STEPS_PER_SPLIT), plan
    cpu = SimpleNamespace(info=SimpleNamespace(device_type="cpu"))
    assert split_plan(cpu, entry, geometry(call(C_in=512)), None).splits == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(("bm", "bn", "subgroups", "splits"), [
    (32, 64, 4, (2, 3, 1)),  # 196, 104 and 392 output tiles against 256 workgroups
    (64, 64, 8, (2, 3, 1)),  # 100, 56 and 196 against 128 (256 invocations each: K_SPLIT_THREADS)
])
def test_split_plan_fills_with_fewer_large_workgroups(bm: int, bn: int, subgroups: int,
                                                      splits: tuple[int, ...]) -> None:
    entry = next(e for e in IGEMM if "coop" in e.axes and e.axes["block"] == {"bm": bm, "bn": bn})
    assert math.prod(entry.local_size) == 32 * subgroups and K_SPLIT_THREADS == 128 * K_SPLIT_FILL
    gpu = SimpleNamespace(info=SimpleNamespace(device_type="discrete-gpu", limits={"maxStorageBufferRange": 1 << 31}))
    got = []
    for c, hw in ((256, 14), (512, 7), (128, 28)):  # ResNet-50 res4, res5 and res3 3x3 convs at batch 8
        g = conv_geometry((8, c, hw, hw), np.zeros((c, c, 3, 3), np.int8), stride=1, padding=1, dilation=1, groups=1)
        got.append(split_plan(gpu, entry, g).splits)  # type: ignore[arg-type]
    assert tuple(got) == splits


def test_split_plan_keeps_the_partial_sums_in_one_buffer() -> None:
    entry = MANIFEST.variant(STAGED)
    g = geometry(call(C_in=512, C_out=64, K=3))
    slice_bytes = 16 * g.groups * g.M * g.OCg4
    for room in (1, 2, 3):
        gpu = SimpleNamespace(info=SimpleNamespace(device_type="discrete-gpu",
                                                   limits={"maxStorageBufferRange": room * slice_bytes + 15}))
        assert split_plan(gpu, entry, g).splits == room  # type: ignore[arg-type]


def test_split_counts_are_the_ladder_as_split_plan_makes_them() -> None:
    entry = MANIFEST.variant(STAGED)
    g = geometry(call(C_in=64, C_out=24))  # 144 K words: 18 steps of 8
    gpu = SimpleNamespace(info=SimpleNamespace(device_type="discrete-gpu", limits={"maxStorageBufferRange": 1 << 31}))
    counts = split_counts(gpu, entry, g)  # type: ignore[arg-type]
    assert counts == [1, 2, 3, 4, 6, 9]  # 8 and 12 splits of 18 steps are 6 and 9 of whole steps
    assert counts == sorted({split_plan(gpu, entry, g, s).splits for s in SPLIT_LADDER})  # type: ignore[arg-type]
    assert all(split_plan(gpu, entry, g, s).splits == s for s in counts)  # type: ignore[arg-type]
    assert split_counts(gpu, MANIFEST.variant(UNSTAGED), g) == [1]  # type: ignore[arg-type]
    slice_bytes = 16 * g.groups * g.M * g.OCg4
    tight = SimpleNamespace(info=SimpleNamespace(device_type="discrete-gpu",
                                                 limits={"maxStorageBufferRange": 3 * slice_bytes + 15}))
    assert split_counts(tight, entry, g) == [1, 2, 3]  # type: ignore[arg-type]
    assert split_plan(tight, entry, g, 9).splits == 3  # type: ignore[arg-type]  # a forced split too


# --- conv2d_q8 routing ---------------------------------------------------------------------------


def test_family_implements_conv2d_q8() -> None:
    assert conv2d_q8_igemm in implementations("conv2d_q8")


def test_cached_verdict_routes_conv2d_q8_here(cache_dir: Path, dispatched: list[str]) -> None:
    kw = call(C_in=16, C_out=24, stride=(1, 2), activation="relu")
    record_verdict(kw, STAGED)
    out = runtime.conv2d_q8(**kw)
    assert dispatched == [STAGED]
    assert_close(out, run_conv2d_q8(**kw).output)
    assert_close(out, reference(kw))


@pytest.fixture
def igemm_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(variant, K splits) of each implicit GEMM conv2d_q8 routes here."""
    runs: list[tuple[str, int]] = []
    real = selection.run_igemm_conv2d_q8

    def spy(*args: Any, **kwargs: Any) -> Any:
        run = real(*args, **kwargs)
        runs.append((run.variant, run.splits))
        return run

    monkeypatch.setattr(selection, "run_igemm_conv2d_q8", spy)
    return runs


def test_cached_split_runs_with_its_variant(cache_dir: Path, igemm_runs: list[tuple[str, int]]) -> None:
    kw = call(C_in=64, C_out=24)
    record_verdict(kw, split_choice(STAGED, 3))
    out = runtime.conv2d_q8(**kw)
    assert igemm_runs == [(STAGED, 3)]
    assert_close(out, reference(kw))


def test_cached_split_of_a_variant_that_does_not_fit_is_dropped(cache_dir: Path,
                                                                igemm_runs: list[tuple[str, int]]) -> None:
    kw = call(C_in=64, C_out=24)
    record_verdict(kw, split_choice(OTHER_LAYOUT, 3))  # reads 4c; the call packs x in 4w4c
    runtime.conv2d_q8(**kw)
    (variant, splits), = igemm_runs
    entry = MANIFEST.variant(variant)
    assert variant != OTHER_LAYOUT and splits == split_plan(default_device(), entry, geometry(kw)).splits


@pytest.mark.parametrize("choice", [
    {"variant": STAGED},
    {"variant": STAGED, "split_k": "0"},
    {"variant": STAGED, "split_k": "two"},
    {"variant": STAGED, "split_k": "2", "block": "32x32"},
])
def test_unreadable_split_choice_is_warned_and_ignored(choice: dict[str, str], cache_dir: Path,
                                                       dispatched: list[str]) -> None:
    kw = call()
    record_verdict(kw, choice)
    with pytest.warns(UserWarning, match=r"conv2d_q8\.impl.*ignored"):
        out = runtime.conv2d_q8(**kw)
    heuristic = ["igemm"] if prefer_igemm(default_device(), MANIFEST, geometry(kw)) else ["im2col", "gemm"]
    assert roles(dispatched) == heuristic
    assert_close(out, reference(kw))


def test_cached_variant_of_another_layout_still_routes_with_a_picked_one(cache_dir: Path,
                                                                         dispatched: list[str]) -> None:
    kw = call()
    record_verdict(kw, OTHER_LAYOUT)  # reads 4c; the call packs x in 4w4c
    runtime.conv2d_q8(**kw)
    assert roles(dispatched) == ["igemm"] and dispatched != [OTHER_LAYOUT]


def test_packed_input_is_routed_too(cache_dir: Path, dispatched: list[str]) -> None:
    kw = call()
    record_verdict(kw, STAGED)
    out = runtime.conv2d_q8(**{**kw, "x": runtime.pack(kw["x"], "4c")})
    assert roles(dispatched) == ["igemm"]
    assert_close(out, reference(kw))


@pytest.mark.parametrize("verdict", [PAIR, GEMM_INT, "q8ta_dwconv_generic_nope"])
def test_other_verdicts_keep_im2col_gemm(verdict: str, cache_dir: Path, dispatched: list[str]) -> None:
    kw = call()
    record_verdict(kw, verdict)
    runtime.conv2d_q8(**kw)
    assert roles(dispatched) == ["im2col", "gemm"]


def test_forced_passes_are_never_routed(cache_dir: Path, dispatched: list[str]) -> None:
    kw = call()
    record_verdict(kw, STAGED)
    runtime.conv2d_q8(**kw, gemm_variant=GEMM_INT)
    assert roles(dispatched) == ["im2col", "gemm"]


def test_tuning_off_falls_back_to_the_heuristic(cache_dir: Path, dispatched: list[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    kw = call()
    record_verdict(kw, STAGED)
    monkeypatch.setenv(tuning.ENV, "off")
    runtime.conv2d_q8(**kw)
    # a 3x3 conv of 8 channels: the heuristic keeps im2col + GEMM (channels not a multiple of 32)
    assert roles(dispatched) == ["im2col", "gemm"]


def test_depthwise_calls_go_to_the_direct_conv_first(cache_dir: Path, dispatched: list[str]) -> None:
    kw = call(C_in=8, C_out=8, groups=8)
    record_verdict(kw, STAGED)
    runtime.conv2d_q8(**kw)
    assert roles(dispatched) == ["dwconv"]  # q8ta_dwconv is asked before q8ta_igemm (family-name order)


def _gpu(*, dot: bool = True, coop: bool = False, kind: str = "discrete-gpu") -> Any:
    """A device description for prefer_igemm: which igemm variants run is all it asks."""
    def supports(features: Any) -> list[str]:
        have = {"shaderIntegerDotProduct"} if dot else set()
        have |= {"cooperativeMatrixNV", "shaderInt8", "vulkanMemoryModel"} if coop else set()
        return [f for f in features if f not in have]

    shapes = [{"M": 16, "N": 16, "K": 32, "A": "sint8", "Result": "sint32"}] if coop else []
    info = SimpleNamespace(device_type=kind, subgroup_size=32, cooperative_matrix=shapes,
                           limits=H100_LIMITS)
    return SimpleNamespace(info=info, supports=supports)


@pytest.mark.parametrize(("shape", "device", "want"), [
    ({"C_in": 64, "C_out": 64}, _gpu(), True),  # ResNet-like 3x3, packed dot products
    ({"C_in": 64, "C_out": 64}, _gpu(dot=False, coop=True), True),  # tensor cores
    ({"C_in": 64, "C_out": 64}, _gpu(dot=False), False),  # neither: integer fallback only
    ({"C_in": 64, "C_out": 64}, _gpu(kind="cpu"), False),  # a CPU keeps im2col + GEMM
    ({"C_in": 64, "C_out": 64, "K": 1}, _gpu(), False),  # 1x1: left to the tuner
    ({"C_in": 48, "C_out": 64}, _gpu(), False),  # channels not a multiple of 32
    ({"C_in": 64, "C_out": 16}, _gpu(), False),  # too few output channels for a 64-wide tile
    ({"C_in": 64, "C_out": 64, "groups": 2}, _gpu(), True),  # 2 groups of 32 channels
    ({"C_in": 8, "C_out": 8, "groups": 8}, _gpu(), False),  # depthwise
], ids=["3x3-dot", "3x3-coop", "3x3-int-only", "3x3-cpu", "1x1", "48-channels", "16-out", "grouped", "depthwise"])
def test_heuristic(shape: Kwargs, device: Any, want: bool) -> None:
    assert prefer_igemm(device, MANIFEST, geometry(call(**shape))) is want


@pytest.mark.parametrize(("n", "c", "hw", "block"), [
    (1, 512, 7, (32, 32)),  # ResNet-50 res5 at batch 1, 116 M multiply-adds: the smallest block
    (8, 512, 7, (32, 64)),  # at batch 8, 925 M: the block nearest MID_BLOCK_AREA
    (32, 128, 112, (128, 128)),  # 51 M outputs: the largest block
], ids=["small", "mid", "big"])
def test_tensor_core_block_follows_the_conv_size(n: int, c: int, hw: int, block: tuple[int, int]) -> None:
    geom = conv_geometry((n, c, hw, hw), np.zeros((c, c, 3, 3), np.int8), stride=1, padding=1, dilation=1, groups=1)
    entry = igemm_entry(MANIFEST, _gpu(coop=True), "4w4c", geom, "float32", None)  # type: ignore[arg-type]
    assert "coop" in entry.axes and (entry.declared["DISPATCH_BLOCK_M"], entry.declared["DISPATCH_BLOCK_N"]) == block
    # the one-stage twins of a block are the tuner's to pick, never the heuristic's
    assert entry.axes["stages"]["s"] == 2, entry.name


def test_impl_class_separates_what_changes_the_verdict() -> None:
    base = impl_class(geometry(call(C_in=64, C_out=64)))
    assert base.startswith("dense k3x3 s1x1 d1x1 ")
    assert impl_class(geometry(call(C_in=64, C_out=64, stride=2))) != base
    assert impl_class(geometry(call(C_in=64, C_out=64, K=1))) != base
    assert impl_class(geometry(call(C_in=128, C_out=64))) != base
    assert impl_class(geometry(call(C_in=8, C_out=8, groups=8))).startswith("depthwise ")
    assert impl_class(geometry(call(C_in=8, C_out=8, groups=2))).startswith("grouped ")
    batch8 = call(C_in=64, C_out=64)
    batch8["x"] = np.repeat(batch8["x"], 4, axis=0)
    assert impl_class(geometry(batch8)) != base  # M differs: another bucket


@pytest.mark.parametrize("args", [
    {"x": np.zeros((1, 8, 4, 4), np.float32)},  # not int8: conv2d_q8 reports it
    {"weight": np.zeros((12, 8, 3, 3), np.float32)},
    {"weight": np.zeros((12, 7, 3, 3), np.int8)},  # does not fit x and groups
    {"groups": 2.0},
    {"stride": 0},
    {"device": "gpu0"},
    {"some_new_argument": 1},  # an argument this implementation does not know
], ids=["x-float", "weight-float", "weight-shape", "groups-float", "stride-zero", "device-str", "unknown-kwarg"])
def test_implementation_declines_what_it_cannot_read(args: Kwargs, cache_dir: Path) -> None:
    kw = {**call(), **args}
    record_verdict(call(), STAGED)  # it would serve the well-formed call
    x, weight, w_scales, bias = (kw.pop(k) for k in ("x", "weight", "w_scales", "bias"))
    assert conv2d_q8_igemm(x, weight, w_scales, bias, **kw) is NotImplemented


def test_implementation_declines_a_closed_device(cache_dir: Path) -> None:
    kw = call()
    record_verdict(kw, STAGED)
    with Device() as dev:
        pass
    x, weight, w_scales, bias = (kw.pop(k) for k in ("x", "weight", "w_scales", "bias"))
    assert conv2d_q8_igemm(x, weight, w_scales, bias, device=dev, **kw) is NotImplemented


# --- bad arguments: a typed error naming the argument, before any GPU work --------------------------


BAD: list[tuple[str, Callable[[Kwargs], Kwargs], type[Exception], tuple[str, ...]]] = [
    ("weight-shape", lambda kw: {**kw, "weight": np.zeros((12, 7, 3, 3), np.int8)}, ValueError,
     ("weight.shape=(12, 7, 3, 3)",)),
    ("weight-float", lambda kw: {**kw, "weight": kw["weight"].astype(np.float32)}, TypeError, ("weight", "float32")),
    ("x-int16", lambda kw: {**kw, "x": kw["x"].astype(np.int16)}, TypeError, ("x", "int16")),
    ("groups", lambda kw: {**kw, "groups": 3}, ValueError, ("groups=3",)),
    ("w_scales-length", lambda kw: {**kw, "w_scales": np.full(5, 0.01, np.float32)}, ValueError, ("w_scales",)),
    ("x_zp-range", lambda kw: {**kw, "x_zp": 128}, ValueError, ("x_zp", "128")),
    ("stride-zero", lambda kw: {**kw, "stride": 0}, ValueError, ("stride", "0")),
    ("x-over-limit", lambda kw: {**kw, "x": x_over_limit(8)}, ValueError, ("x needs", "maxStorageBufferRange")),
    ("layout", lambda kw: {**kw, "input_layout": "no such layout!"}, ValueError,
     ("input_layout", "'no such layout!'")),
    ("variant-unknown", lambda kw: {**kw, "variant": "q8ta_igemm_nope"}, ValueError,
     ("variant='q8ta_igemm_nope'", "no such variant")),
    ("variant-other-role", lambda kw: {**kw, "variant": GEMM_INT}, ValueError,
     (f"variant={GEMM_INT!r}", "not a igemm variant")),
    ("variant-other-layout", lambda kw: {**kw, "variant": OTHER_LAYOUT}, ValueError,
     (f"variant={OTHER_LAYOUT!r}", "'4c'", "'4w4c'")),
    ("split_k-zero", lambda kw: {**kw, "variant": STAGED, "split_k": 0}, ValueError, ("split_k", "0")),
    ("split_k-float", lambda kw: {**kw, "variant": STAGED, "split_k": 2.0}, TypeError, ("split_k", "2.0")),
    ("split_k-unsplittable", lambda kw: {**kw, "variant": UNSTAGED, "split_k": 2}, ValueError,
     ("split_k=2", UNSTAGED, "cannot split K")),
    ("packed", lambda kw: {**kw, "packed": "yes"}, TypeError, ("packed",)),
    ("device", lambda kw: {**kw, "device": "gpu0"}, TypeError, ("device", "'gpu0'")),
]


@pytest.mark.parametrize(("change", "exc", "words"), [pytest.param(c, e, w, id=i) for i, c, e, w in BAD])
def test_bad_argument(change: Callable[[Kwargs], Kwargs], exc: type[Exception], words: tuple[str, ...],
                      no_gpu: None) -> None:
    with pytest.raises(exc) as err:
        run_igemm_conv2d_q8(**change(call()))
    for word in words:
        assert word in str(err.value), f"{word!r} not in {str(err.value)!r}"


# --- the oracle and the timing script ------------------------------------------------------------


def test_oracle_matches_plain_loops() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 4, 5, 7), dtype=np.int8)
    w = rng.integers(-128, 128, (6, 2, 2, 3), dtype=np.int8)
    (sh, sw), (ph, pw), (dh, dw), x_zp, groups = (2, 1), (1, 3), (3, 2), 11, 2
    acc = oracle.conv_acc(x, w, x_zp=x_zp, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    _, _, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    for n, oc, ho, wo in itertools.product(*(range(d) for d in acc.shape)):
        g = oc // (OC // groups)
        want = sum((int(x[n, g * Cg + c, h, v]) - x_zp) * int(w[oc, c, kh, kw])
                   for c, kh, kw in itertools.product(range(Cg), range(KH), range(KW))
                   for h, v in [(ho * sh - ph + kh * dh, wo * sw - pw + kw * dw)] if 0 <= h < H and 0 <= v < W)
        assert acc[n, oc, ho, wo] == want, (n, oc, ho, wo)


def test_time_layer_times_both_paths_and_checks_them() -> None:
    layer = ConvLayer("test.c32@5", 1, 32, 5, 32)
    t = time_layer(default_device(), layer, 1, screen=False, keep=lambda name: name in (STAGED, UNSTAGED))
    assert not t.failed, t.failed
    assert set(t.igemm) == {STAGED, UNSTAGED} and t.pair_s and t.pair_s > 0
    assert t.best_igemm is not None and t.igemm_pick


def test_time_layer_times_the_tuned_pick_at_its_split(cache_dir: Path) -> None:
    layer = ConvLayer("test.c32@5", 1, 32, 5, 32)
    kw = {**call(C_in=32, C_out=32), "x": np.zeros((1, 32, 5, 5), np.int8)}  # the layer's shape: its class
    record_verdict(kw, split_choice(STAGED, 2))
    t = time_layer(default_device(), layer, 1, screen=False, keep=lambda name: name == UNSTAGED)
    assert not t.failed, t.failed
    assert t.igemm_pick == f"{STAGED} S=2" and t.splits[t.igemm_pick] == 2
    assert set(t.igemm) == {UNSTAGED, t.igemm_pick}  # timed though `keep` leaves the variant out


def test_timing_script_runs_a_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert timing_main(["small.c64@14s2", "--small", "--reps", "1", "--warm-s", "0", "--no-screen",
                        "--no-peer"]) == 0
    out = capsys.readouterr().out
    assert "small.c64@14s2" in out and "peer: disabled" in out and "failed" not in out
    assert timing_main(["small.c128@7", "--small", "--reps", "1", "--warm-s", "0", "--no-screen", "--no-peer",
                        "--layout", "4c"]) == 0
    out = capsys.readouterr().out
    assert "x in 4c" in out and "small.c128@7" in out and "failed" not in out
    with pytest.raises(SystemExit):
        timing_main(["--layout", "nhwc"])
    assert "--layout 'nhwc': the layouts are" in capsys.readouterr().err
