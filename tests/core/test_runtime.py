"""Tests of the Vulkan compute runner (runtime/) on whatever device is present (lavapipe in CI).

The test shaders in tests/core/shaders/ are compiled with glslc into a temporary
directory and turned into manifest-style variant entries with a small
``spirv-cross --reflect`` converter below (the real codegen does this
properly; this one only knows what the test shaders use).
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.core import vkapi
from runtime.core.device import Device, Step, default_device
from runtime.core.errors import (
    INSTALL_HINT,
    DeviceNotFoundError,
    GuardBandError,
    LimitExceededError,
    MissingFeatureError,
    ShaderkitError,
)
from runtime.core.glsl_types import pack_push_constants, push_constant_size
from runtime.core.manifest import PushConstants, PushMember, SpecConstant, VariantEntry
from runtime.tools.memcheck import rss_mib

SHADERS = Path(__file__).parent / "shaders"
_PUSH_SIZES = {"int": 4, "uint": 4, "float": 4, "bool": 4, "uvec4": 16, "ivec4": 16, "vec4": 16}


def compile_variant(source: Path, out_dir: Path, features: list[str] | None = None) -> VariantEntry:
    """glslc + spirv-cross --reflect -> manifest variant entry (enough for the test shaders)."""
    spv = out_dir / (source.stem + ".spv")
    subprocess.run(["glslc", "--target-env=vulkan1.2", "-o", str(spv), str(source)], check=True)
    reflect = subprocess.run(["spirv-cross", str(spv), "--reflect"], capture_output=True, text=True, check=True)
    refl = json.loads(reflect.stdout)
    types = refl["types"]
    bindings = []
    for block in refl.get("ssbos", []):
        array = types[block["type"]]["members"][-1]  # the runtime array
        access = "read" if block.get("readonly") else "write" if block.get("writeonly") else "read_write"
        bindings.append(
            {
                "set": block["set"],
                "binding": block["binding"],
                "name": array["name"],
                "kind": "storage_buffer",
                "access": access,
                "element": array["type"],
                "element_size": array["array_stride"],
                "block_size": 0,
            }
        )
    for block in refl.get("ubos", []):
        bindings.append(
            {
                "set": block["set"],
                "binding": block["binding"],
                "name": block["name"],
                "kind": "uniform_buffer",
                "access": "read",
                "element": "block",
                "element_size": 0,
                "block_size": block["block_size"],
            }
        )
    push = None
    for pc in refl.get("push_constants", []):
        members = [
            {"name": m["name"], "offset": m["offset"], "type": m["type"], "size": _PUSH_SIZES[m["type"]]}
            for m in types[pc["type"]]["members"]
        ]
        push = {"size": max(m["offset"] + m["size"] for m in members), "members": members}
    entry = refl["entryPoints"][0]
    consts = {c["id"]: c for c in refl.get("specialization_constants", [])}
    local, ids = [], []
    is_id = entry.get("workgroup_size_is_spec_constant_id", [False] * 3)
    for value, spec in zip(entry["workgroup_size"], is_id, strict=True):
        ids.append(value if spec else None)
        local.append(int(consts[value]["default_value"]) if spec else value)
    spec_constants = [
        {"id": c["id"], "name": c["name"], "type": c["type"], "default": c["default_value"]}
        for c in consts.values()
        if c["name"] and c["id"] not in ids
    ]
    return VariantEntry.from_json({
        "name": source.stem,
        "family": "test",
        "role": "test",
        "axes": {},
        "spv": spv.name,
        "sha256": hashlib.sha256(spv.read_bytes()).hexdigest(),
        "entry_point": "main",
        "bindings": sorted(bindings, key=lambda b: b["binding"]),
        "push_constants": push,
        "spec_constants": spec_constants,
        "local_size": local,
        "local_size_spec_ids": ids,
        "features": list(features or []),
    }, out_dir)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VariantEntry]:
    out = tmp_path_factory.mktemp("spv")
    features = {
        "widen": ["storageBuffer8BitAccess", "storageBuffer16BitAccess"],
        "dot4x8": ["shaderIntegerDotProduct"],
    }
    return {src.stem: compile_variant(src, out, features.get(src.stem)) for src in sorted(SHADERS.glob("*.comp"))}


@pytest.fixture(scope="module")
def dev() -> Any:
    with Device() as device:
        yield device


# -- device ---------------------------------------------------------------------


def test_device_info_and_describe(dev: Device) -> None:
    info = dev.info
    assert info.name and info.device_type in {"cpu", "discrete_gpu", "integrated_gpu", "virtual_gpu", "other"}
    assert info.api_version.count(".") == 2 and info.api_version >= "1.2"
    assert info.subgroup_size >= 1
    for key in (
        "maxStorageBufferRange",
        "maxUniformBufferRange",
        "maxComputeWorkGroupCount",
        "maxComputeWorkGroupSize",
        "maxComputeWorkGroupInvocations",
        "maxPushConstantsSize",
        "maxComputeSharedMemorySize",
        "timestampPeriod",
    ):
        assert key in info.limits
    assert len(info.limits["maxComputeWorkGroupCount"]) == 3
    assert set(info.features) >= {"shaderIntegerDotProduct", "storageBuffer8BitAccess", "cooperativeMatrix"}
    assert isinstance(info.cooperative_matrix, list)
    assert info.features["cooperativeMatrix"] or info.cooperative_matrix == []
    assert all(name.startswith("VK_") for name in info.extensions)
    text = dev.describe()
    assert info.name in text and "subgroup size" in text
    assert dev.supports(["shaderIntegerDotProduct", "noSuchFeature"]) == ["noSuchFeature"]


def test_bad_selector_lists_devices(dev: Device) -> None:
    with pytest.raises(DeviceNotFoundError) as err:
        Device("no-such-gpu-xyz")
    message = str(err.value)
    assert dev.info.name in message and "no-such-gpu-xyz" in message and INSTALL_HINT in message
    with pytest.raises(DeviceNotFoundError):
        Device(99)
    with Device(0) as first:
        assert first.info.name


def test_selector_from_environment(dev: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADERKIT_DEVICE", dev.info.name[:6].upper())
    with Device() as other:
        assert other.info.name == dev.info.name
    monkeypatch.setenv("SHADERKIT_DEVICE", "no-such-gpu-xyz")
    with pytest.raises(DeviceNotFoundError):
        Device()


def test_missing_loader_is_device_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # sys.modules[name] = None makes the import fail as a missing module would.
    monkeypatch.setattr(vkapi, "_module", None)
    monkeypatch.setitem(sys.modules, "vulkan", None)
    with pytest.raises(DeviceNotFoundError, match="apt-get install -y libvulkan1 mesa-vulkan-drivers"):
        Device()


def test_close_is_idempotent_and_final(variants: dict[str, Any]) -> None:
    device = Device()
    pipeline = device.pipeline(variants["poke"])
    buf = device.alloc(16, guard=True)
    device.close()
    device.close()
    assert device.closed
    with pytest.raises(ShaderkitError, match="closed"):
        device.alloc(16)
    with pytest.raises(ShaderkitError, match="closed"):
        device.run([Step(pipeline, {0: np.zeros(4, np.uint32)}, {"index": 0, "value": 1})])
    with pytest.raises(ShaderkitError, match="freed"):
        buf.read()
    buf.free()  # harmless after the device is gone


def test_default_device_is_shared() -> None:
    assert default_device() is default_device()


# -- buffers --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.float16, np.int64, np.uint16])
@pytest.mark.parametrize("guard", [False, True])
def test_upload_readback_roundtrip(dev: Device, dtype: Any, guard: bool) -> None:
    rng = np.random.default_rng(1)
    data = (rng.standard_normal(37) * 100).astype(dtype)
    with dev.upload(data, guard=guard) as buf:
        assert buf.nbytes == data.nbytes
        np.testing.assert_array_equal(buf.read(dtype), data)
        buf.write(data[::-1].copy())
        np.testing.assert_array_equal(buf.read(dtype), data[::-1])
        buf.check_guards("roundtrip")


def test_alloc_fill(dev: Device) -> None:
    with dev.alloc(10, fill=0xAB, guard=True) as buf:
        assert buf.read().tolist() == [0xAB] * 10
        with pytest.raises(ValueError):
            buf.write(np.zeros(11, np.uint8))


def test_too_large_buffer_is_rejected_before_allocating(dev: Device) -> None:
    limit = dev.info.limits["maxStorageBufferRange"]
    with pytest.raises(LimitExceededError) as err:
        dev.alloc(limit + 1)
    assert err.value.limit == "maxStorageBufferRange"
    assert err.value.value == limit + 1 and err.value.maximum == limit
    assert isinstance(err.value, ValueError)
    with pytest.raises(LimitExceededError, match="maxUniformBufferRange"):
        dev.alloc(dev.info.limits["maxUniformBufferRange"] + 4, kind="uniform")


# -- dispatch -------------------------------------------------------------------


def test_push_and_spec_constants_reach_the_shader(dev: Device, variants: dict[str, Any]) -> None:
    n = 200
    x = np.arange(n, dtype=np.float32)
    out = dev.alloc(n * 4, fill=0)
    # Defaults: ADD = 0, FLAG = false, local size 1 (one group per element).
    plain = dev.pipeline(variants["scale"])
    assert plain.local_size == (1, 1, 1)
    dev.run([Step(plain, {0: out, 1: x}, {"n": n, "scale": 3.0}, (n, 1, 1))])
    np.testing.assert_array_equal(out.read(np.float32), x * 3)

    spec = {"ADD": -7, "FLAG": True, "BIAS": 0.5, "local_size_x": 64}
    special = dev.pipeline(variants["scale"], spec)
    assert special.local_size == (64, 1, 1)
    groups = (n + 63) // 64
    dev.run([Step(special, {0: out, 1: x}, {"n": n, "scale": 0.5}, (groups, 1, 1))])
    np.testing.assert_array_equal(out.read(np.float32), x * 0.5 - 7 + 0.5)
    out.free()


def test_8_and_16_bit_storage(dev: Device, variants: dict[str, Any]) -> None:
    n = 100
    i8 = np.arange(-50, 50, dtype=np.int8)
    f16 = (np.arange(n) / 8).astype(np.float16)
    pipeline = dev.pipeline(variants["widen"])
    with dev.alloc(n * 4) as out_i, dev.alloc(n * 4) as out_f:
        dev.run([Step(pipeline, {0: out_i, 1: out_f, 2: i8, 3: f16}, {"n": n}, ((n + 31) // 32, 1, 1))])
        np.testing.assert_array_equal(out_i.read(np.int32), i8.astype(np.int32))
        np.testing.assert_array_equal(out_f.read(np.float32), f16.astype(np.float32))


def test_integer_dot_product_with_uniform_block(dev: Device, variants: dict[str, Any]) -> None:
    n = 40
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, size=(n, 4), dtype=np.int8)
    b = rng.integers(-128, 128, size=(n, 4), dtype=np.int8)
    params = np.zeros(8, dtype=np.int32)
    params[0] = 1000  # bias.x
    params[4] = n  # n
    pipeline = dev.pipeline(variants["dot4x8"])
    with dev.alloc(n * 4, fill=0) as out:
        words_a, words_b = a.view(np.uint32).ravel(), b.view(np.uint32).ravel()
        step = Step(pipeline, {0: out, 1: words_a, 2: words_b, 3: params}, {}, (3, 1, 1))
        dev.run([step])
        expected = (a.astype(np.int32) * b.astype(np.int32)).sum(axis=1) + 1000
        np.testing.assert_array_equal(out.read(np.int32), expected)


def test_steps_are_ordered_by_barriers(dev: Device, variants: dict[str, Any]) -> None:
    n = 64
    pipeline = dev.pipeline(variants["scale"], {"local_size_x": 64})
    x = np.ones(n, dtype=np.float32)
    with dev.upload(x) as a, dev.alloc(n * 4) as b:
        # a -> b -> a -> b: each step reads what the previous one wrote.
        steps = [Step(pipeline, {0: dst, 1: src}, {"n": n, "scale": 2.0}) for dst, src in [(b, a), (a, b)] * 4]
        dev.run(steps)
        np.testing.assert_array_equal(a.read(np.float32), x * 2**8)


def test_many_steps_grow_the_descriptor_pool(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["poke"])
    with dev.alloc(150 * 4, fill=0) as buf:
        dev.run([Step(pipeline, {0: buf}, {"index": i, "value": i * 3}) for i in range(150)])
        np.testing.assert_array_equal(buf.read(np.uint32), np.arange(150) * 3)


def test_codegen_style_local_size_spec_entry(dev: Device, variants: dict[str, Any]) -> None:
    # The codegen stores 0 for spec-constant axes and lists the unnamed constant itself.
    base = variants["scale"]
    entry = replace(base, name="scale_codegen_style", local_size=(0, 1, 1),
                    spec_constants=(SpecConstant(0, "", "uint", 1), *base.spec_constants))
    assert dev.pipeline(entry).local_size == (1, 1, 1)
    assert dev.pipeline(entry, {"local_size_x": 32}).local_size == (32, 1, 1)


def test_push_constant_packing_layouts() -> None:
    layout = PushConstants(48, (
        PushMember("n", 0, "uint", 4),
        PushMember("h", 4, "float16_t", 2),
        PushMember("on", 8, "bool", 4),
        PushMember("v", 16, "ivec4", 16),
        PushMember("w", 32, "vec3", 12),
    ))
    values = {"n": 7, "h": 1.5, "on": True, "v": [1, -2, 3, -4], "w": np.array([0.5, 1.0, 2.0])}
    raw = pack_push_constants(layout, values, push_constant_size(layout), "t")
    assert len(raw) == 48
    assert np.frombuffer(raw, np.uint32, 1, 0)[0] == 7
    assert np.frombuffer(raw, np.float16, 1, 4)[0] == 1.5
    assert np.frombuffer(raw, np.uint32, 1, 8)[0] == 1
    assert np.frombuffer(raw, np.int32, 4, 16).tolist() == [1, -2, 3, -4]
    assert np.frombuffer(raw, np.float32, 3, 32).tolist() == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError, match="'v'"):
        pack_push_constants(layout, dict(values, v=[1, 2]), 48, "t")
    with pytest.raises(ValueError, match="'n'"):
        pack_push_constants(layout, dict(values, n=1.5), 48, "t")


def test_timestamps_unsupported_is_clear(
    dev: Device, variants: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev._ctx, "timestamp_bits", 0)
    step = Step(dev.pipeline(variants["poke"]), {0: np.zeros(4, np.uint32)}, {"index": 0, "value": 1})
    with pytest.raises(ShaderkitError, match="timestamp"):
        dev.run([step], timestamps=True)


def test_timestamps(dev: Device, variants: dict[str, Any]) -> None:
    n = 4096
    pipeline = dev.pipeline(variants["scale"], {"local_size_x": 64})
    x = np.ones(n, dtype=np.float32)
    with dev.alloc(n * 4) as out:
        steps = [Step(pipeline, {0: out, 1: x}, {"n": n, "scale": 1.0}, (n // 64, 1, 1))] * 3
        times = dev.run(steps, timestamps=True)
        assert times is not None and len(times) == 3
        assert all(0.0 <= t < 10.0 for t in times)
        assert dev.run(steps) is None


def test_guard_band_catches_write_past_the_end(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["poke"])
    n = 16
    with dev.alloc(n * 4, guard=True, fill=0) as buf:
        dev.run([Step(pipeline, {0: buf}, {"index": n - 1, "value": 0x1234})])
        buf.check_guards("inside")  # last element is in bounds
        assert buf.read(np.uint32)[-1] == 0x1234
        dev.run([Step(pipeline, {0: buf}, {"index": n, "value": 0x5678})])
        with pytest.raises(GuardBandError) as err:
            buf.check_guards("poke")
        assert err.value.side == "after" and err.value.offset == n * 4 and err.value.past_end == 0
        assert err.value.label == "poke" and "+0 past the end" in str(err.value)


def test_guard_band_before_the_region(dev: Device) -> None:
    with dev.alloc(32, guard=True) as buf:
        buf._bytes[buf.offset - 3] ^= 0xFF  # type: ignore[index]  # simulate an underflowing write
        with pytest.raises(GuardBandError) as err:
            buf.check_guards("under")
        assert err.value.side == "before" and err.value.offset == -3 and "-3" in str(err.value)


# -- errors ---------------------------------------------------------------------


def test_unknown_spec_constant(dev: Device, variants: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="NOPE") as err:
        dev.pipeline(variants["scale"], {"NOPE": 1})
    assert "ADD" in str(err.value) and "local_size_x" in str(err.value)


def test_push_constant_errors(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["poke"])
    buf = np.zeros(4, np.uint32)
    with pytest.raises(ValueError, match="value"):
        dev.run([Step(pipeline, {0: buf}, {"index": 0})])
    with pytest.raises(ValueError, match="bogus"):
        dev.run([Step(pipeline, {0: buf}, {"index": 0, "value": 1, "bogus": 2})])
    with pytest.raises(ValueError, match="index"):
        dev.run([Step(pipeline, {0: buf}, {"index": -1, "value": 1})])


def test_wrong_dtype_names_the_binding(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["scale"], {"local_size_x": 64})
    out = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match=r"binding 1 \('t_in'\)") as err:
        dev.run([Step(pipeline, {0: out, 1: np.zeros(64, np.float64)}, {"n": 64, "scale": 1.0})])
    assert "float64" in str(err.value)
    dot = dev.pipeline(variants["dot4x8"])
    small_block = np.zeros(2, np.int32)
    words = np.zeros(4, np.uint32)
    with pytest.raises(ValueError, match=r"binding 3 \('Params'\)"):
        dev.run([Step(dot, {0: np.zeros(4, np.int32), 1: words, 2: words, 3: small_block})])


def test_missing_binding(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["scale"], {"local_size_x": 64})
    with pytest.raises(ValueError, match=r"binding 1 \('t_in'\)"):
        dev.run([Step(pipeline, {0: np.zeros(64, np.float32)}, {"n": 64, "scale": 1.0})])


def test_groups_over_limit(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["poke"])
    maximum = dev.info.limits["maxComputeWorkGroupCount"][1]
    with pytest.raises(LimitExceededError) as err:
        dev.run([Step(pipeline, {0: np.zeros(4, np.uint32)}, {"index": 0, "value": 1}, (1, maximum + 1, 1))])
    assert err.value.limit == "maxComputeWorkGroupCount[1]" and err.value.value == maximum + 1


def test_local_size_over_limit(dev: Device, variants: dict[str, Any]) -> None:
    too_many = dev.info.limits["maxComputeWorkGroupInvocations"] + 1
    with pytest.raises(LimitExceededError):
        dev.pipeline(variants["scale"], {"local_size_x": too_many})


def test_masked_feature(variants: dict[str, Any]) -> None:
    with Device(mask_features=["shaderIntegerDotProduct"]) as masked:
        assert masked.info.features["shaderIntegerDotProduct"] is False
        assert masked.supports(["shaderIntegerDotProduct"]) == ["shaderIntegerDotProduct"]
        with pytest.raises(MissingFeatureError) as err:
            masked.pipeline(variants["dot4x8"])
        assert err.value.feature == "shaderIntegerDotProduct" and err.value.variant == "dot4x8"
        assert "shaderIntegerDotProduct" in str(err.value) and "dot4x8" in str(err.value)
        masked.pipeline(variants["scale"])  # variants without the feature still work


def test_sha256_mismatch(dev: Device, variants: dict[str, Any]) -> None:
    entry = replace(variants["poke"], name="poke_stale", sha256="0" * 64)
    with pytest.raises(ShaderkitError, match=r"poke\.spv"):
        dev.pipeline(entry)


def test_only_descriptor_set_zero(dev: Device, variants: dict[str, Any]) -> None:
    entry = replace(variants["poke"], name="poke_set1",
                    bindings=tuple(replace(b, set=1) for b in variants["poke"].bindings))
    with pytest.raises(ValueError, match="set 1"):
        dev.pipeline(entry)


# -- caching and memory ---------------------------------------------------------


def test_pipeline_cache_reuse(dev: Device, variants: dict[str, Any]) -> None:
    a = dev.pipeline(variants["scale"], {"ADD": 1, "FLAG": True})
    b = dev.pipeline(variants["scale"], {"FLAG": True, "ADD": 1})
    c = dev.pipeline(variants["scale"], {"ADD": 2, "FLAG": True})
    assert a is b
    assert c is not a
    numpy_spec: dict[str, Any] = {"ADD": np.int32(1), "FLAG": np.bool_(True)}
    assert dev.pipeline(variants["scale"], numpy_spec) is a


def test_abandoned_buffers_are_released(dev: Device) -> None:
    live = len(dev._ctx._tracked)
    for _ in range(200):
        dev.upload(np.zeros(64, np.float32))  # dropped without free(): GC must release it
    gc.collect()
    assert len(dev._ctx._tracked) == live


def test_memory_stays_flat(dev: Device, variants: dict[str, Any]) -> None:
    pipeline = dev.pipeline(variants["scale"], {"local_size_x": 64})
    n = 256
    host = np.arange(n, dtype=np.float32)
    with dev.alloc(n * 4) as out, dev.upload(host) as inp:

        def burst(count: int) -> None:
            for i in range(count):
                source = host if i % 2 else inp  # ndarray path allocates and frees per run
                step = Step(pipeline, {0: out, 1: source}, {"n": n, "scale": 2.0}, (n // 64, 1, 1))
                dev.run([step], timestamps=i % 4 == 0)

        burst(300)
        before = rss_mib()
        burst(2000)
        growth = rss_mib() - before
        np.testing.assert_array_equal(out.read(np.float32), host * 2)
    assert growth < 4.0, f"RSS grew by {growth:.1f} MiB over 2000 dispatches"


# -- dispatches over maxComputeWorkGroupCount ----------------------------------


def _id_counts(dev: Device, pipeline: Any, groups: tuple[int, int, int]) -> np.ndarray:
    """Run ids.comp over `groups` workgroups; how often each invocation id ran."""
    size = (groups[0] * pipeline.local_size[0], groups[1], groups[2])
    with dev.alloc(4 * size[0] * size[1] * size[2], fill=0) as out:
        dev.run([Step(pipeline, {0: out}, {"size": (*size, 0)}, groups)])
        return out.read(np.uint32)


@pytest.mark.parametrize("groups", [(70_000, 1, 1), (1, 70_000, 1), (1, 1, 70_000), (65_536, 2, 1), (131_071, 1, 1)])
def test_split_dispatch_runs_every_id_once(dev: Device, variants: dict[str, Any], groups: tuple[int, int, int]) -> None:
    """A dispatch over the limit runs in pieces, each id exactly once and global (WORKGROUP_BASE_*)."""
    limits = dev.info.limits["maxComputeWorkGroupCount"]
    if all(g <= m for g, m in zip(groups, limits, strict=True)):
        pytest.skip(f"{groups} fits this device's maxComputeWorkGroupCount {limits}")
    pipeline = dev.pipeline(variants["ids"], {"local_size_x": 2})
    counts = _id_counts(dev, pipeline, groups)
    assert counts.min() == 1 and counts.max() == 1, f"ids ran {counts.min()}..{counts.max()} times"


def test_split_dispatch_in_a_timed_sequence(dev: Device, variants: dict[str, Any]) -> None:
    """Pieces of a split step share the step's barrier and timestamps: one time per step."""
    pipeline = dev.pipeline(variants["ids"], {"local_size_x": 1})
    big = dev.info.limits["maxComputeWorkGroupCount"][0] + 5
    with dev.alloc(4 * big, fill=0) as out:
        step = Step(pipeline, {0: out}, {"size": (big, 1, 1, 0)}, (big, 1, 1))
        seconds = dev.run([step, step], timestamps=True)
        assert seconds is not None and len(seconds) == 2
        np.testing.assert_array_equal(out.read(np.uint32), np.full(big, 2, np.uint32))


def test_unsplittable_dispatch_is_refused_in_its_terms(dev: Device, variants: dict[str, Any]) -> None:
    """A shader without WORKGROUP_BASE_* cannot be split: LimitExceededError naming the variant,
    also from Device.check_dispatch (what an op calls before packing)."""
    maximum = dev.info.limits["maxComputeWorkGroupCount"][0]
    with pytest.raises(LimitExceededError, match=r"poke.*WORKGROUP_BASE_X"):
        dev.check_dispatch(variants["poke"], (maximum + 1,), "poke")
    wide = replace(variants["ids"], local_size=(64, 1, 1))
    with pytest.raises(LimitExceededError, match=r"conv of x groups.*uint32"):
        dev.check_dispatch(wide, (2**27, 1, 1), "conv of x")  # 2**33 invocation ids
    with pytest.raises(LimitExceededError, match="pieces of a split dispatch"):
        dev.check_dispatch(variants["ids"], (2**31, 1, 1), "conv of x")
    dev.check_dispatch(variants["ids"], (maximum + 1, 1, 1))  # splittable: fine
    with pytest.raises(ValueError, match="maxComputeWorkGroupCount"):
        dev.run([Step(dev.pipeline(variants["poke"]), {0: np.zeros(4, np.uint32)}, {"index": 0, "value": 1},
                      (maximum + 1, 1, 1))])


@pytest.mark.parametrize(("groups", "exc", "words"), [
    ((1.5,), TypeError, "groups must hold ints"),
    ((True, 1), TypeError, "groups must hold ints"),
    ((-1,), ValueError, "[0, 4294967295]"),
    ((2**32,), ValueError, "[0, 4294967295]"),
    ((1, 1, 1, 1), ValueError, "1 to 3 ints"),
    ("111", ValueError, "1 to 3 ints"),
])
def test_bad_group_counts(dev: Device, variants: dict[str, Any], groups: Any, exc: type, words: str) -> None:
    pipeline = dev.pipeline(variants["poke"])
    with pytest.raises(exc, match=re.escape(words)):
        dev.run([Step(pipeline, {0: np.zeros(4, np.uint32)}, {"index": 0, "value": 1}, groups)])


def _conv_q8_case(rng: np.random.Generator, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                  groups: int) -> dict[str, Any]:
    c_out = w_shape[0]
    return {
        "x": rng.integers(-128, 128, x_shape, dtype=np.int8),
        "weight": rng.integers(-128, 128, w_shape, dtype=np.int8),
        "w_scales": rng.uniform(0.002, 0.02, c_out).astype(np.float32),
        "bias": rng.standard_normal(c_out).astype(np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2, "groups": groups,
    }


@pytest.mark.parametrize(("x_shape", "w_shape", "groups"), [
    pytest.param((1, 4, 1024, 1100), (4, 4, 1, 1), 1, id="1x1-conv-over-1x4x1024x1100"),
    pytest.param((1, 65_600, 2, 2), (65_600, 1, 1, 1), 65_600, id="depthwise-65600-groups-1x1"),
    pytest.param((1, 65_600, 3, 2), (65_600, 1, 2, 2), 65_600, id="depthwise-65600-groups-2x2"),
])
def test_conv2d_q8_over_the_workgroup_count_limit(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                                  groups: int) -> None:
    """Ordinary convs whose im2col / GEMM dispatches exceed maxComputeWorkGroupCount run, right,
    through the public op and through the im2col + GEMM path (whose dispatches are split)."""
    import runtime
    from runtime.families.q8ta_conv2d.op import run_conv2d_q8
    from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference

    kwargs = _conv_q8_case(np.random.default_rng(21), x_shape, w_shape, groups)
    want, _ = conv2d_q8_reference(**kwargs)
    for got in (runtime.conv2d_q8(**kwargs), run_conv2d_q8(**kwargs).output):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_conv2d_float_over_the_workgroup_count_limit() -> None:
    import runtime
    from runtime.families.f_conv2d.oracle import conv2d_float_reference

    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 4, 1024, 1100)).astype(np.float32)
    weight = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    got = runtime.conv2d_float(x, weight, None)
    want, magnitude = conv2d_float_reference(x, weight, None)
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= 1e-5 * magnitude + 1e-6)
