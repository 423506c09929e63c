"""No test may use a name that could become a layout as its example of an unknown one.

A user may add any layout to variants.yaml whose name passes the safe-name rule (codegen/names.py):
a test that expects, say, `input_layout="nhwc"` to be refused would turn `make test` red for the
user who adds an `nhwc` layout. Unknown-layout examples must be names no layout can have (e.g.
"no such layout!"). This scans every test module for string literals passed as a layout (keyword
or dict key `layout` / `input_layout`) and accepts only the manifest's layouts, `generic`, or names
that cannot be layouts. tests/test_extension.py adds a layout on purpose and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from codegen.names import is_safe_name
from runtime.core.manifest import load_manifest

TESTS = Path(__file__).resolve().parent
LAYOUT_KEYS = ("layout", "input_layout")
ADDS_LAYOUTS = {"test_extension.py"}


def layout_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of every string literal given as a layout in `tree`."""
    found = []
    for node in ast.walk(tree):
        pairs: list[tuple[object, ast.expr]] = []
        if isinstance(node, ast.Call):
            pairs = [(kw.arg, kw.value) for kw in node.keywords]
        elif isinstance(node, ast.Dict):
            pairs = [(k.value if isinstance(k, ast.Constant) else None, v)
                     for k, v in zip(node.keys, node.values, strict=True) if k is not None]
        for key, value in pairs:
            if key in LAYOUT_KEYS and isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append((value.lineno, value.value))
    return found


def test_no_test_uses_a_possible_layout_name_as_an_unknown_one() -> None:
    known = set(load_manifest().layouts) | {"generic"}
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ADDS_LAYOUTS:
            continue
        for line, value in layout_literals(ast.parse(path.read_text(), str(path))):
            if value not in known and is_safe_name(value):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{line}: {value!r}")
    assert not offenders, ("layout names a user could add, used as unknown layouts (use a name with a "
                           f"space or '!', e.g. 'no such layout!'): {offenders}")


def test_the_scan_finds_what_it_looks_for() -> None:
    source = 'f(input_layout="nhwc"); g({"layout": "4c1w"}); h(layout=x); k(other="nchw")'
    assert layout_literals(ast.parse(source)) == [(1, "nhwc"), (1, "4c1w")]
