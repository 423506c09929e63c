"""q8ta_dwconv is one unit: docs/adding-a-family.md lists every file adding it took, none of them in
the core, the codegen or another family, and the core finds the family without naming it."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.core.manifest import load_manifest
from runtime.core.registry import families, family_of_role

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "adding-a-family.md"
MARKER = "<!-- files touched (tests/families/q8ta_dwconv/test_family_unit.py) -->"
FAMILY = "q8ta_dwconv"
OWN_FOLDERS = (f"templates/{FAMILY}", f"runtime/families/{FAMILY}", f"tests/families/{FAMILY}")
SHARED_FILES = {"variants.yaml", "docs/adding-a-family.md"}


def listed() -> list[str]:
    """The paths of the bullet list right after the marker."""
    text = DOC.read_text()
    assert MARKER in text, f"{DOC} lost its marker {MARKER!r}"
    block = re.match(r"\n((?:- .*\n)+)", text.split(MARKER, 1)[1])
    assert block, f"{DOC}: no bullet list right after {MARKER!r}"
    paths = re.findall(r"^- `([^`]+)`", block.group(1), flags=re.M)
    assert len(paths) == block.group(1).count("\n"), "every bullet must start with a `path`"
    return paths


def own_files() -> set[str]:
    return {str(p.relative_to(REPO)) for folder in OWN_FOLDERS for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_doc_lists_exactly_the_family_files() -> None:
    paths = listed()
    assert len(paths) == len(set(paths)), "a file is listed twice"
    assert set(paths) == own_files() | SHARED_FILES


def test_nothing_listed_is_core_codegen_or_another_family() -> None:
    for path in listed():
        assert not path.startswith(("runtime/core/", "codegen/")), path
        parts = path.split("/")
        for root in ("templates", "runtime/families", "tests/families"):
            depth = root.count("/") + 1
            if path.startswith(root + "/") and len(parts) > depth + 1:
                assert parts[depth] == FAMILY, f"{path} is in another family's folder"


def test_core_and_codegen_never_name_the_family() -> None:
    sources = [*(REPO / "runtime" / "core").rglob("*.py"), *(REPO / "codegen").rglob("*.py")]
    assert sources
    naming = [str(p.relative_to(REPO)) for p in sources if "dwconv" in p.read_text()]
    assert not naming, f"the core / codegen name the family: {naming}"


def test_the_registry_finds_the_family_by_discovery() -> None:
    family = families()[FAMILY]
    assert family.roles == ("dwconv",) and family_of_role("dwconv") is family
    assert "dwconv2d_q8" in family.ops and "conv2d_q8" in family.implements
    variants = load_manifest().entries(role="dwconv")
    assert len(variants) == 24 and {v.family for v in variants} == {FAMILY}
