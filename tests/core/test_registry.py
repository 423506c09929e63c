"""The family registry: discovery, clashes, ops through runtime.<name>, and a core that imports no family."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import runtime
from runtime.core import registry
from runtime.core.registry import Family, Level, RegistryError

REPO = Path(__file__).resolve().parents[2]


def test_discovery_finds_every_family_package() -> None:
    packages = sorted(p.name for p in (REPO / "runtime" / "families").iterdir()
                      if (p / "__init__.py").exists() and not p.name.startswith("_"))
    assert sorted(registry.families()) == packages


def test_ops_are_runtime_attributes() -> None:
    assert "conv2d_q8" in runtime.ops() and "conv2d_float" in runtime.ops()
    for name in runtime.ops():
        assert callable(getattr(runtime, name)) and name in dir(runtime)
    with pytest.raises(AttributeError, match="no attribute 'conv2d_nope'"):
        _ = runtime.conv2d_nope


def _noop(variant: str, case: dict, device: object) -> None:  # type: ignore[type-arg]
    return None


def test_role_and_op_clashes_are_refused() -> None:
    owner = registry.family_of_role("gemm")
    assert owner is not None
    with pytest.raises(RegistryError, match=r"'gemm'.*already claimed"):
        registry.register(Family(name="intruder", roles=("gemm",)))
    with pytest.raises(RegistryError, match="conv2d_q8"):
        registry.register(Family(name="intruder", roles=("intruder_role",), ops={"conv2d_q8": print}))
    lv = Level("x", ("intruder_role",), _noop, lambda e, m: None)
    with pytest.raises(RegistryError, match="level name twice"):
        registry.register(Family(name="intruder", roles=("intruder_role",), levels=(lv, lv)))
    assert "intruder" not in registry.families()


def test_a_broken_family_is_reported_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pkg = tmp_path / "shaderkit_broken_family"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match=r"shaderkit_broken_family failed to load: RuntimeError: boom"):
        registry._load("shaderkit_broken_family", importlib.import_module)
    sys.modules.pop("shaderkit_broken_family", None)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", ["runtime/core", "codegen"])
def test_core_imports_no_family(folder: str) -> None:
    """The codegen and the Vulkan runner never import a family, an oplib helper or a tool."""
    bad = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        found = sorted(m for m in _imports(path)
                       if m.startswith(("runtime.families", "runtime.oplib", "runtime.tools", "bench", "tests")))
        if found:
            bad[str(path.relative_to(REPO))] = found
    assert not bad, bad


def test_oracles_import_numpy_only() -> None:
    """An oracle is an independent reference: no op code, no shared packing helpers."""
    allowed = {"numpy", "__future__", "collections.abc", "typing", "math", "dataclasses", "itertools", "functools"}
    for path in sorted((REPO / "runtime" / "families").glob("*/oracle.py")):
        extra = {m for m in _imports(path) - allowed if not m.startswith("numpy.")}
        assert not extra, f"{path.relative_to(REPO)} imports {sorted(extra)}"
        assert "from ." not in path.read_text(), f"{path.relative_to(REPO)} has a relative import"
