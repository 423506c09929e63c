"""`build --optimize`: glslc -O SPIR-V, reflection from the plain compile, interface checked."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codegen.compile import interface_difference
from tests.codegen.codegen_fixtures import TINY_NAMES, assert_consistent, assert_valid_manifest, make_tiny

UNUSED_BINDING = "layout(set = 0, binding = 1, std430) readonly buffer Unused { uint t_unused[]; };\n"


def test_optimized_build_beside_the_plain_one(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    opt_out = tiny.out / "opt"  # inside the plain build dir, as in `--out build/opt`
    assert tiny.cli("build", "-j", "2").returncode == 0
    proc = tiny.cli("build", "-O", "-j", "2", "--out", str(opt_out))
    assert proc.returncode == 0, proc.stderr
    plain, opt = assert_valid_manifest(tiny.out), assert_valid_manifest(opt_out)
    assert (plain["optimized"], opt["optimized"]) == (False, True)
    assert opt["compiler"].endswith(" -O") and not plain["compiler"].endswith(" -O")
    assert set(assert_consistent(opt_out)) == set(TINY_NAMES)
    differs = 0
    for name, entry in opt["variants"].items():
        base = plain["variants"][name]
        # names come from the plain compile: -O would have stripped them
        for key in ("bindings", "push_constants", "spec_constants", "local_size", "entry_point"):
            assert entry[key] == base[key], (name, key)
        spv = opt_out / entry["spv"]
        val = subprocess.run(["spirv-val", "--target-env", "vulkan1.2", str(spv)], capture_output=True, text=True)
        assert val.returncode == 0, val.stderr
        differs += spv.read_bytes() != (tiny.out / base["spv"]).read_bytes()
        assert entry["input_hash"] != base["input_hash"] and entry["glsl_hash"] != base["glsl_hash"]
    assert differs == len(TINY_NAMES)
    assert tiny.cli("build", "-O", "--out", str(opt_out)).stdout.startswith(
        f"shaderkit build: {len(TINY_NAMES)} variants, 0 compiled, {len(TINY_NAMES)} cached"
    )
    # the plain build is still up to date next to it: -O wrote only under opt/
    assert f"0 compiled, {len(TINY_NAMES)} cached" in tiny.cli("build").stdout


def test_optimizer_dropping_a_binding_fails_that_variant(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "{{ other.bump(step) }}", UNUSED_BINDING + "{{ other.bump(step) }}")
    proc = tiny.cli("build", "-O")
    assert proc.returncode == 1
    assert "error: beta_wg16:\n  glslc -O changed the interface of variant beta_wg16 (" in proc.stderr
    assert (
        "descriptor bindings [(0, 0, 'storage_buffer'), (0, 1, 'storage_buffer')] became [(0, 0, 'storage_buffer')]"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert "beta_wg16" not in assert_consistent(tiny.out)
    assert tiny.cli("build", "--out", str(tmp_path / "plain")).returncode == 0  # fine without -O


IFACE: dict[str, Any] = {
    "entry_point": "main",
    "bindings": [{"set": 0, "binding": 0, "kind": "storage_buffer", "name": "a"}],
    "spec_constants": [{"id": 0, "type": "int", "name": "ACTIVATION"}, {"id": 100, "type": "int", "name": "M"}],
    "local_size": [64, 1, 1],
    "local_size_spec_ids": [None, None, None],
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda i: i["spec_constants"].pop(), None),  # a dead spec constant removed: fine
        (lambda i: i["bindings"][0].update(name="_12_34"), None),  # names are not compared
        (lambda i: i["spec_constants"].append({"id": 7, "type": "int"}), "spec constant id 7 (int)"),
        (lambda i: i["spec_constants"][0].update(type="uint"), "spec constant id 0 (uint)"),
        (lambda i: i["bindings"][0].update(kind="uniform_buffer"), "descriptor bindings"),
        (lambda i: i["bindings"].clear(), "descriptor bindings"),
        (lambda i: i.update(local_size=[32, 1, 1]), "local_size [64, 1, 1] became [32, 1, 1]"),
    ],
    ids=["dead_spec", "renamed", "added_spec", "spec_type", "binding_kind", "binding_gone", "local_size"],
)
def test_interface_difference(change: Any, problem: str | None) -> None:
    optimized = copy.deepcopy(IFACE)
    change(optimized)
    found = interface_difference(IFACE, optimized)
    assert (found is None) if problem is None else (found is not None and problem in found), found
