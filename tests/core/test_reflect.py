"""Pure-Python SPIR-V reflection (runtime.load_shader) against the codegen's spirv-cross reflection,
and shaders shaderkit did not generate run through runtime.run_variant."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.core.reflect import ReflectionError, reflect_spirv

MANIFEST = load_manifest()
SHADERS = Path(__file__).parent / "shaders"


@pytest.mark.parametrize("name", sorted(MANIFEST.variants))
def test_matches_the_manifest(name: str) -> None:
    entry = MANIFEST.variants[name]
    got = reflect_spirv(entry.spv_path.read_bytes(), name=name, spv_path=entry.spv_path)
    assert got.sha256 == entry.sha256
    assert got.bindings == entry.bindings
    assert got.push_constants == entry.push_constants
    assert got.spec_constants == entry.spec_constants
    assert (got.local_size, got.local_size_spec_ids) == (entry.local_size, entry.local_size_spec_ids)
    assert got.entry_point == entry.entry_point
    assert set(got.features) <= set(entry.features)


def test_glsl_source_runs_through_run_variant() -> None:
    scale = runtime.load_shader(SHADERS / "scale.comp")
    assert [b.name for b in scale.bindings] == ["t_out", "t_in"]
    assert {s.name: s.id for s in scale.spec_constants if s.name} == {"ADD": 1, "FLAG": 2, "BIAS": 3}
    assert scale.local_size_spec_ids == (0, None, None)
    x = np.arange(64, dtype=np.float32)
    out = runtime.run_variant(scale, {"t_in": x}, {"t_out": ((64,), np.float32)}, push={"n": 64, "scale": 2.0},
                              spec={"local_size_x": 32, 1: 3, "FLAG": True}, groups=2)
    np.testing.assert_allclose(out["t_out"], x * 2 + 3 + 0.25)


@pytest.mark.skipif(shutil.which("spirv-opt") is None, reason="spirv-opt (spirv-tools) not installed")
def test_stripped_module_by_ids(tmp_path: Path) -> None:
    """Names stripped (as upstream's build does): bindings by number, spec constants by id."""
    spv, stripped = tmp_path / "scale.spv", tmp_path / "scale.stripped.spv"
    subprocess.run(["glslc", "--target-env=vulkan1.2", str(SHADERS / "scale.comp"), "-o", str(spv)], check=True)
    subprocess.run(["spirv-opt", "--strip-debug", str(spv), "-o", str(stripped)], check=True)
    entry = runtime.load_shader(stripped)
    assert [b.name for b in entry.bindings] == ["binding0", "binding1"]
    assert {s.id for s in entry.spec_constants} == {0, 1, 2, 3} and all(s.name == "" for s in entry.spec_constants)
    assert [m.name for m in entry.push_constants.members] == ["member0", "member1"]  # type: ignore[union-attr]
    x = np.arange(8, dtype=np.float32)
    out = runtime.run_variant(entry, {1: x}, {0: ((8,), np.float32)}, push={"member0": 8, "member1": 1.0},
                              spec={0: 8, 1: 5}, groups=1)
    np.testing.assert_allclose(out[0], x + 5)


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", ["not a SPIR-V module"]), (b"\x00" * 24, ["magic number"]), (b"\x03\x02\x23\x07" + b"\x00" * 3, ["bytes"])],
)
def test_not_spirv(tmp_path: Path, content: bytes, words: list[str]) -> None:
    path = tmp_path / "x.spv"
    path.write_bytes(content)
    with pytest.raises(ReflectionError) as err:
        runtime.load_shader(path)
    for word in words:
        assert word in str(err.value)


def test_bad_glsl_and_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "broken.comp"
    src.write_text("#version 450\nvoid main() { nope; }\n")
    with pytest.raises(ValueError, match="glslc rejected"):
        runtime.load_shader(src)
    with pytest.raises(ValueError, match="cannot read"):
        runtime.load_shader(tmp_path / "absent.spv")
