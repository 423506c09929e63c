"""What the property tests reached: examples per (level, variant), coverage cells, the tables.

The generic property tests (tests/test_properties.py) record every example here; conftest.py prints
the tables at the end of the run and turns the run red when a coverage cell that ran got no example
of its own class (a *zero cell*): the class is then not guaranteed, whatever the other cells did.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.core.registry import Cell

NO_LAYOUT = "(none)"  # the column of cells of variants that read no input layout


@dataclass
class Ledger:
    """Counts of one test run. Keys: level name, variant name, cell id ("" for a level without cells)."""

    examples: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_failure: dict[tuple[str, str], int] = field(default_factory=dict)
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # cells whose test ran
    hits: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # examples inside their cell
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # node id -> (outcome, first line)
    classes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (level, class) of plain examples
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, level: str, variant: str, cell: Cell | None) -> None:
        """A test of `cell` ran past its skips: from now on it must reach its cell."""
        if cell is not None:
            with self.lock:
                self.cells.setdefault((level, variant, cell.id), cell)

    def example(self, level: str, variant: str, cell: Cell | None, case: dict[str, Any],
                classes: tuple[str, ...] = ()) -> int:
        """Count one example (and the coverage `classes` a level without cells says it is in);
        returns the number of examples of (level, variant) so far."""
        with self.lock:
            self.examples[(level, variant)] += 1
            if cell is not None and cell.member(case):
                self.hits[(level, variant, cell.id)] += 1
            for klass in classes:
                self.classes[(level, klass)] += 1
            return self.examples[(level, variant)]

    def failed(self, level: str, variant: str, at: int) -> None:
        with self.lock:
            self.first_failure.setdefault((level, variant), at)

    def outcome(self, nodeid: str, outcome: str, message: str = "") -> None:
        """The result of one property test (a failed setup or call wins over a later phase)."""
        with self.lock:
            if self.outcomes.get(nodeid, ("passed",))[0] == "passed":
                self.outcomes[nodeid] = (outcome, message)

    def zero_cells(self) -> list[tuple[str, str, str]]:
        """Cells whose test ran without one example in the cell."""
        return sorted(key for key in self.cells if self.hits[key] == 0)

    def table(self) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[int, int, int]]]:
        """(classes, layouts, {(class, layout): (cells, cells reached, examples in them)})."""
        out: dict[tuple[str, str], tuple[int, int, int]] = {}
        for key, cell in self.cells.items():
            where = (cell.klass, cell.layout or NO_LAYOUT)
            n, reached, examples = out.get(where, (0, 0, 0))
            out[where] = (n + 1, reached + (self.hits[key] > 0), examples + self.hits[key])
        classes = sorted({c for c, _ in out})
        layouts = sorted({lay for _, lay in out}, key=lambda lay: (lay == NO_LAYOUT, lay))
        return classes, layouts, out

    def dump(self, path: Path) -> None:
        """Examples and first failures per (level, variant) as JSON (read by tests/planted)."""
        doc = {
            "examples": [[lv, v, n] for (lv, v), n in sorted(self.examples.items())],
            "first_failure": [[lv, v, n] for (lv, v), n in sorted(self.first_failure.items())],
            "zero_cells": [list(k) for k in self.zero_cells()],
            "outcomes": {nodeid: list(result) for nodeid, result in sorted(self.outcomes.items())},
        }
        path.write_text(json.dumps(doc, indent=1))


LEDGER = Ledger()
# where to dump the ledger at the end of the run (tests/planted and tests/differential read it)
DUMP_ENV = "SHADERKIT_LEDGER"
# a seed for the cell tests of a randomized profile (see run_cell)
SEED_ENV = "SHADERKIT_SEED"


def coverage_lines(ledger: Ledger) -> list[str]:
    """The coverage table: per class (rows) and input layout (columns), examples that landed in
    their cell, with `!n` after the count where n cells of that class and layout got none."""
    classes, layouts, cells = ledger.table()
    if not cells:
        return []
    width = max(10, *(len(lay) + 2 for lay in layouts))
    lines = [f"{'class':12}" + "".join(f"{lay:>{width}}" for lay in layouts)]
    for klass in classes:
        row = f"{klass:12}"
        for lay in layouts:
            n, reached, examples = cells.get((klass, lay), (0, 0, 0))
            text = "-" if n == 0 else str(examples) + ("" if reached == n else f"!{n - reached}")
            row += f"{text:>{width}}"
        lines.append(row)
    total = sum(n for n, _, _ in cells.values())
    lines.append(f"{total} cells ran (variant x layout x class), {len(ledger.zero_cells())} with no example in them")
    return lines


def class_lines(ledger: Ledger) -> list[str]:
    """Levels without cells: how many examples fell in each class their `coverage` names."""
    levels = sorted({lv for lv, _ in ledger.classes})
    return [f"{lv}: " + ", ".join(f"{k} {n}" for (lv2, k), n in sorted(ledger.classes.items()) if lv2 == lv)
            for lv in levels]


def dump_if_asked(ledger: Ledger, env: dict[str, str] | None = None) -> None:
    path = (env or dict(os.environ)).get(DUMP_ENV)
    if path:
        ledger.dump(Path(path))


def run_cell(
    cell: Cell, examples: int, check: Callable[[dict[str, Any]], None], key: str | None = None,
    **settings_kwargs: Any,
) -> int:
    """Draw `examples` cases of `cell` (settings: the loaded profile's, updated by `settings_kwargs`)
    and `check` each; returns how many were inside the cell.

    `key` (a pytest node id) gives the run its own seed under a derandomized profile and its own
    example-database entry, as Hypothesis's pytest plugin does for a parametrized @given test. The
    cell tests call @given inside the test instead: the plugin chains one settings object per
    parametrization of a @given test, and thousands of cells overflow the recursion limit.
    """
    from hypothesis import given, seed, settings
    from hypothesis import strategies as st

    inside = [0]

    @settings(max_examples=examples, **settings_kwargs)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(cell.cases, label="case")
        inside[0] += cell.member(case)
        check(case)

    if key is not None:
        # derandomized: a seed of the test's own; else $SHADERKIT_SEED, if set, mixed with it (make fuzz
        # runs two builds on the same cases); else Hypothesis's own random seed
        if settings(**settings_kwargs).derandomize:
            run = seed(zlib.crc32(key.encode()))(run)
        elif os.environ.get(SEED_ENV, "").isdigit():
            run = seed(zlib.crc32(key.encode()) ^ int(os.environ[SEED_ENV]))(run)
        run.hypothesis.inner_test._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
    run()
    return inside[0]
