"""The README and docs/ name files and attributes of this repository: each one must exist, so the
docs cannot drift from the code without `make test` saying where."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = ("templates/", "codegen/", "runtime/", "tests/", "bench/", "docs/", "examples/", "scripts/", ".ci/")
FILES = {"variants.yaml", "Makefile", "pyproject.toml", "requirements.txt"}


def named_paths(text: str) -> list[str]:
    """Back-quoted repository paths in a markdown text (wildcards and placeholders left out)."""
    out = []
    for m in re.finditer(r"`([^`\s]+)`", text):
        p = m.group(1).rstrip(".,:;")
        if (p.startswith(TOP) or p in FILES) and not any(c in p for c in "*<>{}$"):
            out.append(p)
    return out


def resolves(p: str) -> bool:
    """A path (optionally `:line`), or `path/module.attr[...]` naming an attribute of a module."""
    path = p.split(":")[0]
    if (REPO / path).exists():
        return True
    m = re.fullmatch(r"([\w/]+)\.(\w+)(\[.*\])?", path)
    if m and (REPO / f"{m[1]}.py").exists():
        return hasattr(importlib.import_module(m[1].replace("/", ".")), m[2])
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_named_path_exists(doc: Path) -> None:
    missing = [p for p in named_paths(doc.read_text()) if not resolves(p)]
    assert not missing, f"{doc.relative_to(REPO)} names what is not in the repository: {missing}"


def test_the_check_sees_paths() -> None:
    text = "see `runtime/core/device.py` and `runtime/core/layouts.BUILTIN_LAYOUTS[\"4w\"]`, not `nope/x.py`"
    assert named_paths(text) == ["runtime/core/device.py", 'runtime/core/layouts.BUILTIN_LAYOUTS["4w"]']
    assert resolves("runtime/core/device.py") and resolves('runtime/core/layouts.BUILTIN_LAYOUTS["4w"]')
    assert not resolves("runtime/core/nothing_here.py") and not resolves("runtime/core/layouts.NO_SUCH_NAME")
