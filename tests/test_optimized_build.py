"""An -O build runs like the plain one: the runtime takes what the optimizer may drop from the manifest.

glslc -O removes spec constants no shader code reads (DISPATCH_BLOCK_M / _N, SHARED_BYTES: the
template states them for the host only). The runtime never reads them from the SPIR-V: `build -O`
writes the plain compile's reflection into the manifest (codegen/compile.py), and the ops size their
dispatch from the manifest (VariantEntry.declared). Vulkan ignores specialization entries for ids a
module lacks. This builds one GEMM variant with -O, checks the constant is gone from the module but
not from the manifest, and runs the GEMM check on cases that need more than one workgroup of rows.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from codegen.build import Project, build
from codegen.patterns import matches
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.checks import check_gemm
from runtime.oplib.strategies import forcing

REPO = Path(__file__).resolve().parent.parent
FAMILY = "q8ta_gemm"


def one_variant_file(family: str) -> tuple[dict[str, Any], str]:
    """variants.yaml reduced to one variant of `family` (the first the real build has), and its name."""
    raw = yaml.safe_load((REPO / "variants.yaml").read_text())
    entry = next(e for e in load_manifest().variants.values() if e.family == family and not e.features)
    block = copy.deepcopy(raw["families"][family])
    block["matrix"] = {axis: [value] for axis, value in entry.axes.items()}
    block.pop("exclude", None)
    block["overrides"] = [ov for ov in block.get("overrides", []) if matches(dict(entry.axes), ov["when"])]
    raw["families"] = {family: block}
    return raw, entry.name


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("optimized")
    raw, name = one_variant_file(FAMILY)
    (root / "variants.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    report = build(Project(root / "variants.yaml", REPO / "templates", root / "build"), optimize=True)
    assert report.ok, report.failures
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHADERKIT_BUILD", str(root / "build"))
        yield root / "build", name


def test_optimizer_dropped_the_constant_the_manifest_keeps(optimized: tuple[Path, str]) -> None:
    build_dir, name = optimized
    entry = load_manifest().variant(name)
    assert load_manifest().path.parent == build_dir.resolve()
    disassembly = subprocess.run(["spirv-dis", str(entry.spv_path)], capture_output=True, text=True, check=True).stdout
    assert "SpecId 100" not in disassembly, "glslc -O kept DISPATCH_BLOCK_M: this test no longer shows anything"
    plain = load_manifest(REPO / "build" / "manifest.json").variant(name)
    assert entry.declared["DISPATCH_BLOCK_M"] == plain.declared["DISPATCH_BLOCK_M"] > 0


def test_optimized_gemm_matches_the_oracle_over_several_workgroups(optimized: tuple[Path, str]) -> None:
    from runtime.families.q8ta_conv2d.strategies import conv_cases

    _, name = optimized
    block_m = int(load_manifest().variant(name).declared["DISPATCH_BLOCK_M"])

    @settings(max_examples=4, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=forcing(conv_cases(["4w4c"]), "m_tail", block_m))
    def run(case: dict[str, Any]) -> None:
        check_gemm(name, case, None)

    run()
