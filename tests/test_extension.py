"""Extending shaderkit by configuration only: docs/adding-a-layout.md, run.

The YAML blocks of docs/adding-a-layout.md marked "applied by tests/test_extension.py" (the `4w`
layout and a 8x4 GEMM tile for both conv families) are merged into a copy of variants.yaml, built
with codegen into a temporary directory, and the property checks run over everything the change
touches: the new GEMM variants, and the generic im2col variants on the new layout, through every
coverage cell their levels declare (runtime/oplib/cells.py: each class of cases on the new layout,
each reached or the test fails). No template, runtime or test code changes; if the walk-through
stops working, this fails.

docs/adding-a-family.md is held to the real files the same way: its variants.yaml blocks must
equal the entries in variants.yaml, and every repository path it names must exist.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from codegen.build import Project, build
from codegen.schema import VariantsFile
from codegen.variants import expand
from runtime.core.device import Device
from runtime.core.layouts import BUILTIN_LAYOUTS, Layout
from runtime.core.manifest import load_manifest
from runtime.core.registry import Level
from runtime.families.f_conv2d.op import run_conv2d_float
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference
from runtime.tools.check import levels_of
from tests.coverage import run_cell

REPO = Path(__file__).resolve().parent.parent
LAYOUT_DOC = REPO / "docs" / "adding-a-layout.md"
FAMILY_DOC = REPO / "docs" / "adding-a-family.md"
APPLIED = "<!-- applied by tests/test_extension.py -->"
SAME_AS_VARIANTS = "<!-- same as variants.yaml (tests/test_extension.py) -->"
EXAMPLES = 10  # Hypothesis cases per (variant, level) of a level without coverage cells
CELL_EXAMPLES = 3  # per coverage cell (the first is Hypothesis's simplest case)
IM2COL_ROLES = ("im2col", "float_im2col")


def yaml_blocks(doc: Path, marker: str) -> list[dict[str, Any]]:
    """The ```yaml blocks of `doc` right after a `marker` line, parsed."""
    text = doc.read_text()
    pattern = re.escape(marker) + r"\n```yaml\n(.*?)```"
    return [yaml.safe_load(block) for block in re.findall(pattern, text, flags=re.S)]


def merge(base: Any, extra: Any, path: str = "") -> Any:
    """`extra` merged into `base`: mappings key by key, lists extended; anything else replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value, f"{path}.{key}") if key in base else value
        return out
    if isinstance(base, list) and isinstance(extra, list):
        dup = [v for v in extra if v in base]
        assert not dup, f"{path}: {dup} already in variants.yaml; the walk-through must add something new"
        return base + extra
    return extra


BASE = yaml.safe_load((REPO / "variants.yaml").read_text())
SNIPPETS = yaml_blocks(LAYOUT_DOC, APPLIED)
EXTENDED = BASE
for snippet in SNIPPETS:
    EXTENDED = merge(EXTENDED, snippet)
NEW_LAYOUTS = sorted(set(EXTENDED["layouts"]) - set(BASE["layouts"]))


def _specs(raw: dict[str, Any]) -> dict[str, Any]:
    return {s.name: s for s in expand(VariantsFile.model_validate(raw))}


BASE_SPECS, EXTENDED_SPECS = _specs(BASE), _specs(EXTENDED)
NEW_VARIANTS = sorted(set(EXTENDED_SPECS) - set(BASE_SPECS))
GENERIC_IM2COL = sorted(n for n, s in EXTENDED_SPECS.items()
                        if s.role in IM2COL_ROLES and s.axes.get("input_layout") == "generic")


def test_walkthrough_adds_the_upstream_layout_and_new_variants() -> None:
    assert len(SNIPPETS) == 2, f"{LAYOUT_DOC} should hold the layout block and the tile block"
    assert NEW_LAYOUTS == ["4w"]
    definition = {k: v for k, v in EXTENDED["layouts"]["4w"].items() if k != "examples"}  # build-only key
    layout = Layout.from_dict("4w", definition)
    assert layout == Layout.from_dict("4w", BUILTIN_LAYOUTS["4w"]), "the doc's 4w differs from upstream's"
    assert set(BASE_SPECS) <= set(EXTENDED_SPECS)
    new_families = {EXTENDED_SPECS[n].family for n in NEW_VARIANTS}
    assert new_families == {"q8ta_gemm", "f_gemm"}, NEW_VARIANTS
    assert all(EXTENDED_SPECS[n].axes["tile"] == {"w": 8, "c": 4} for n in NEW_VARIANTS)
    assert "f_gemm_float16_t8x4_wg64" in NEW_VARIANTS
    assert GENERIC_IM2COL, "no generic im2col variant to read the new layout"


@pytest.fixture(scope="module")
def extended_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The extended variants file built into a tmp dir; SHADERKIT_BUILD points the runtime there."""
    root = tmp_path_factory.mktemp("extended")
    variants = root / "variants.yaml"
    variants.write_text(yaml.safe_dump(EXTENDED, sort_keys=False))
    out = root / "build"
    # the repository's build is only a cache here: its SPIR-V is reused when the inputs hash the same
    try:
        shutil.copytree(REPO / "build", out, ignore=shutil.ignore_patterns(".lock", "*.tmp"))
    except (OSError, shutil.Error):
        shutil.rmtree(out, ignore_errors=True)
    report = build(Project(variants, REPO / "templates", out))
    assert report.ok, f"extended build failed: {report.failures}"
    assert set(NEW_VARIANTS) <= set(report.compiled_names), "new variants must come from this build"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHADERKIT_BUILD", str(out))
        yield out


@pytest.fixture(scope="module")
def device() -> Iterator[Device]:
    """A device of its own: nothing cached from the repository's manifest can leak in."""
    with Device() as dev:
        yield dev


def _run_levels(variant: str, layouts: list[str], dev: Device) -> None:
    manifest = load_manifest()
    assert manifest.path.parent == Path(os.environ["SHADERKIT_BUILD"]).resolve()
    entry = manifest.variant(variant)
    missing = dev.supports(entry.features)
    if missing:
        pytest.skip(f"{variant}: device {dev.info.name!r} lacks {', '.join(missing)}")
    # the level's own strategy (or cells), over just the layouts under test
    only = dataclasses.replace(manifest, layouts={k: manifest.layouts[k] for k in layouts})
    for level in levels_of(variant):
        if level.cells is None:
            _check_cases(level, variant, level.cases(entry, only), dev)
            continue
        cells = level.cells(entry, only)
        assert cells, f"{level.name} declares no cells for {variant}"
        for cell in cells:
            inside = run_cell(cell, CELL_EXAMPLES, lambda case, level=level: level.check(variant, case, dev),
                              derandomize=True)
            assert inside, f"{level.name} on {variant}: cell {cell.id} drew no case of its own"


def _check_cases(level: Level, variant: str, cases: Any, dev: Device) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases)
    def run(case: dict[str, Any]) -> None:
        level.check(variant, case, dev)

    run()


@pytest.mark.parametrize("variant", NEW_VARIANTS)
def test_new_tile_variant_passes_property_checks(variant: str, extended_build: Path, device: Device) -> None:
    _run_levels(variant, sorted(EXTENDED["layouts"]), device)


@pytest.mark.parametrize("variant", GENERIC_IM2COL)
def test_generic_im2col_reads_new_layout(variant: str, extended_build: Path, device: Device) -> None:
    _run_levels(variant, NEW_LAYOUTS, device)


def test_new_layout_reaches_the_ops(extended_build: Path, device: Device) -> None:
    """Both public ops take input_layout="4w" from the extended manifest and pick a generic im2col."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 5, 6, 7), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 5, 3, 3), dtype=np.int8)
    q = {"x_scale": 0.05, "x_zp": 1, "out_scale": 20.0, "out_zp": -3}
    run = run_conv2d_q8(x, w, np.full(3, 0.01, np.float32), None, **q, input_layout="4w", device=device)
    want, _ = conv2d_q8_reference(x, w, np.full(3, 0.01, np.float32), None, **q)
    assert "generic" in run.im2col_variant and np.abs(run.output.astype(int) - want).max() <= 1
    frun = run_conv2d_float(x.astype(np.float32), w.astype(np.float32), None, input_layout="4w", device=device)
    assert "generic" in frun.im2col_variant
    assert np.array_equal(frun.output, run_conv2d_float(x.astype(np.float32), w.astype(np.float32), None,
                                                        device=device).output)


# --- docs/adding-a-family.md --------------------------------------------------------------------


def test_family_doc_yaml_is_the_real_entry() -> None:
    blocks = yaml_blocks(FAMILY_DOC, SAME_AS_VARIANTS)
    assert blocks, f"{FAMILY_DOC} has no block marked {SAME_AS_VARIANTS!r}"
    for block in blocks:
        for family, entry in block["families"].items():
            assert entry == BASE["families"][family], f"{FAMILY_DOC}: families.{family} differs from variants.yaml"


def test_family_doc_paths_exist() -> None:
    named = set(re.findall(r"\b((?:templates|runtime|tests|codegen|docs)/[\w./-]+\.(?:py|j2|md|yaml))",
                           FAMILY_DOC.read_text()))
    assert len(named) > 10
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"{FAMILY_DOC} names files that do not exist: {missing}"


def test_merge_keeps_base_untouched() -> None:
    before = copy.deepcopy(BASE)
    merge(BASE, {"layouts": {"x": {}}, "families": {"f_gemm": {"matrix": {"tile": [{"w": 16, "c": 16}]}}}})
    assert before == BASE
