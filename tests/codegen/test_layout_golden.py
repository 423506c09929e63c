"""Golden layout examples: the build's own layout formula agrees with the runtime's, the shipped
layouts' examples hold, and a layout definition that contradicts its examples fails the build."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from codegen.errors import ConfigError
from codegen.layout_formula import element_offset
from codegen.schema import LayoutDef, load_variants
from runtime.core.layouts import Layout

REPO = Path(__file__).resolve().parents[2]
DIMS = ("N", "C", "H", "W")
SHIPPED = yaml.safe_load((REPO / "variants.yaml").read_text())["layouts"]
# the layout docs/adding-a-layout.md walks a user through adding (applied by tests/test_extension.py)
DOC_LAYOUTS = {name: d for block in re.findall(r"```yaml\n(layouts:.*?)```", (REPO / "docs" / "adding-a-layout.md")
                                              .read_text(), flags=re.S)
               for name, d in yaml.safe_load(block)["layouts"].items()}
LAYOUTS = {**SHIPPED, **DOC_LAYOUTS}


def _random_layouts(rng: np.random.Generator, count: int) -> list[dict]:
    out = []
    for _ in range(count):
        packed = str(rng.choice(DIMS))
        others = [d for d in DIMS if d != packed]
        pick = int(rng.integers(0, len(others) + 1))
        outer = others[pick] if pick < len(others) else None
        out.append({
            "packed_dim": packed, "block": int(rng.choice([1, 2, 4])),
            "outer_dim": outer,
            "outer_block": 1 if outer is None else int(rng.choice([1, 2, 4])),
            "order": [str(d) for d in rng.permutation(DIMS)],
        })
    return out


def test_build_formula_agrees_with_the_runtime_on_random_layouts_and_shapes() -> None:
    rng = np.random.default_rng(16)
    for i, definition in enumerate(_random_layouts(rng, 300)):
        shape = tuple(int(v) for v in rng.integers(1, 10, size=4))
        runtime_offsets = Layout.from_dict(f"random{i}", definition).element_offsets(shape)
        layout = LayoutDef.model_validate(definition)
        for index in itertools.islice(np.ndindex(*shape), 0, None, max(1, int(np.prod(shape)) // 40)):
            assert element_offset(layout, index, shape) == runtime_offsets[index], (definition, shape, index)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_shipped_layouts_carry_examples_their_definition_meets(name: str) -> None:
    layout = LayoutDef.model_validate(LAYOUTS[name])
    assert len(layout.examples) >= 2, f"layout {name!r} should carry golden examples"
    for ex in layout.examples:
        assert element_offset(layout, ex.index, ex.shape) == ex.offset


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_any_two_dims_swapped_contradicts_an_example(name: str) -> None:
    """The examples are chosen so that no transposition of `order` satisfies them all."""
    layout = LayoutDef.model_validate(LAYOUTS[name])
    for i, j in itertools.combinations(range(4), 2):
        order = list(layout.order)
        order[i], order[j] = order[j], order[i]
        swapped = layout.model_copy(update={"order": order})
        assert any(element_offset(swapped, ex.index, ex.shape) != ex.offset for ex in layout.examples), order


def _swapped_copy(tmp_path: Path) -> Path:
    """variants.yaml with the block dims of 4w4c swapped: order [N, H, C, W]."""
    text = (REPO / "variants.yaml").read_text()
    marker = "  4w4c:\n"
    head, tail = text.split(marker, 1)
    tail = tail.replace("order: [N, H, W, C]", "order: [N, H, C, W]", 1)
    path = tmp_path / "variants.yaml"
    path.write_text(head + marker + tail)
    return path


def test_swapped_dims_fail_the_build_naming_layout_example_and_line(tmp_path: Path) -> None:
    path = _swapped_copy(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_variants(path)
    message = str(info.value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "offset: 224" in text)
    assert f"{path}:{line}: layouts.4w4c.examples[2]: golden example 2 of layout '4w4c'" in message
    assert "element [1, 0, 0, 4] of shape [2, 6, 3, 7] is at offset 224 by the example but at 208" in message
    proc = subprocess.run([sys.executable, "-m", "codegen", "build", "--variants", str(path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and "layouts.4w4c.examples[2]" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("example", "problem"),
    [
        ({"shape": [2, 6, 3, 7], "index": [2, 0, 0, 0], "offset": 0}, "outside shape"),
        ({"shape": [2, 6, 3], "index": [0, 0, 0], "offset": 0}, "at least 4"),
        ({"shape": [2, 6, 3, 7], "index": [0, 0, 0, 0], "offset": -1}, "greater than or equal to 0"),
        ({"shape": [2, 6, 3, 7], "index": [0, 0, 0, 0], "byte": 0}, "unknown key 'byte'"),
    ],
)
def test_malformed_examples_are_config_errors(tmp_path: Path, example: dict, problem: str) -> None:
    raw = yaml.safe_load((REPO / "variants.yaml").read_text())
    raw["layouts"]["4c"]["examples"] = [example]
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_variants(path)
    assert "layouts.4c.examples[0]" in str(info.value) and problem in str(info.value), str(info.value)
