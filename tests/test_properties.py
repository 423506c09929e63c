"""Property tests of every variant in the manifest against its family's NumPy oracle.

Parametrized by the manifest and the family registry: every (family level, variant of a role the
level checks) pair is tested, drawing cases from the level's own Hypothesis strategy. A level that
declares coverage cells (runtime/core/registry.Cell: input layout x class of cases, e.g. stride_w
> 1 on the 4c1w layout) gets one test per cell, with cases forced into it, so every class is met on
every layout in every run; the test id ends in the cell id (`pytest -k 4c1w` runs one layout). A
cell whose test ran but drew no case of its own class fails the run (tests/conftest.py), and the
run prints a coverage table per layout and class. A variant added to variants.yaml, or a family
added under runtime/families/, is tested here with no edit.

Every output buffer carries guard bands. A failure prints a one-line repro command and an
`@example(...)` line.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.core.device import default_device
from runtime.core.manifest import VariantEntry, load_manifest
from runtime.core.registry import Cell, Level, VerificationError, families, family_of_role, levels_for_role
from runtime.core.select import device_unfit
from runtime.tools.check import repro_command
from tests.conftest import cell_examples
from tests.coverage import LEDGER, run_cell

MANIFEST = load_manifest()


def _params() -> tuple[list[Any], list[Any]]:
    """(levels without cells, cells): pytest params of (level, entry) and (level, entry, cell)."""
    plain, cells = [], []
    for entry in MANIFEST.variants.values():
        for family, level in levels_for_role(entry.role):
            name = f"{family.name}.{level.name}-{entry.name}"
            if level.cells is None:
                plain.append(pytest.param(level, entry, id=name))
            else:
                cells += [pytest.param(level, entry, cell, id=f"{name}-{cell.id}")
                          for cell in level.cells(entry, MANIFEST)]
    return plain, cells


PLAIN, CELLS = _params()


def require_device_support(entry: VariantEntry) -> None:
    device = default_device()
    missing = device.supports(entry.features)
    if missing:
        pytest.skip(f"{entry.name}: device {device.info.name!r} lacks {', '.join(missing)}")
    unfit = device_unfit(entry, device)
    if unfit:
        pytest.skip(f"{entry.name}: cannot run on {device.info.name!r}: {unfit}")


def run_check(level: Level, variant: str, case: dict[str, Any], cell: Cell | None = None) -> None:
    classes = level.coverage(case) if cell is None and level.coverage is not None else ()
    count = LEDGER.example(level.name, variant, cell, case, classes)
    try:
        level.check(variant, case, None)
    except VerificationError as exc:
        LEDGER.failed(level.name, variant, count)
        raise VerificationError(
            f"{exc}\n  rerun: {repro_command(level.name, variant, case)}\n"
            f"  example: @example(case={json.dumps(case, sort_keys=True)})"
        ) from None
    except Exception:  # e.g. a guard band the shader overwrote: a failure too
        LEDGER.failed(level.name, variant, count)
        raise


@pytest.mark.parametrize(("level", "entry"), PLAIN)
@given(data=st.data())
def test_variant_matches_oracle(level: Level, entry: VariantEntry, data: st.DataObject) -> None:
    require_device_support(entry)
    case = data.draw(level.cases(entry, MANIFEST), label="case")
    run_check(level, entry.name, case)


@pytest.mark.parametrize(("level", "entry", "cell"), CELLS)
def test_cell_matches_oracle(level: Level, entry: VariantEntry, cell: Cell, request: pytest.FixtureRequest) -> None:
    """One coverage cell of one variant: cases forced into the cell's layout and class; at least one
    of them must land in the cell (the strategy forcing it is checked, not trusted)."""
    require_device_support(entry)
    LEDGER.start(level.name, entry.name, cell)
    inside = run_cell(cell, cell_examples(), lambda case: run_check(level, entry.name, case, cell),
                      key=request.node.nodeid)
    assert inside, f"zero cell: no case drawn for {level.name} on {entry.name} was in cell {cell.id}"


def test_every_variant_is_covered() -> None:
    """Every role in the manifest is claimed by a registered family that checks it at some level."""
    assert MANIFEST.variants, "the manifest holds no variants"
    unclaimed = sorted({e.role for e in MANIFEST.variants.values() if family_of_role(e.role) is None})
    claimed = {name: fam.roles for name, fam in families().items()}
    assert not unclaimed, f"roles no registered family claims: {unclaimed} (families: {claimed})"
    unchecked = sorted(e.name for e in MANIFEST.variants.values() if not levels_for_role(e.role))
    assert not unchecked, f"variants no level checks: {unchecked}"


def test_levels_that_read_layouts_declare_cells() -> None:
    """A level checking variants with an `input_layout` axis (a conv-like op reading an input in
    some layout) must declare coverage cells (runtime/oplib/cells.conv_cells does it in one line),
    or its layouts and classes are left to chance again."""
    missing = sorted({f"{family.name}.{level.name}" for entry in MANIFEST.variants.values()
                      if "input_layout" in entry.axes
                      for family, level in levels_for_role(entry.role) if level.cells is None})
    assert not missing, f"levels over variants that read an input layout but declare no cells: {missing}"


def test_cell_ids_are_unique_and_name_their_layout() -> None:
    ids = [p.id for p in CELLS]
    assert len(ids) == len(set(ids)), "two cells of one (level, variant) share an id"
    for param in CELLS:
        cell = param.values[2]
        assert cell.layout is None or f"-{cell.layout}-" in param.id, param.id
