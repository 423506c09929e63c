"""Shared test set-up: Hypothesis profiles, examples per coverage cell, and the end-of-run tables
(examples per variant, coverage per layout and class, tolerance use); a coverage cell that ran
without an example in it turns the run red."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parent.parent

# ci: bounded and deterministic, so `make test` stays within minutes on 2 cores.
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("SHADERKIT_CI_EXAMPLES", "20")),
    deadline=None,  # Vulkan pipeline creation on first use is slow; latency is not what we test
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# fuzz: long, random, with a persisted example database so failures come back first next time.
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("SHADERKIT_FUZZ_EXAMPLES", "400")),
    deadline=None,
    database=DirectoryBasedExampleDatabase(str(REPO / ".hypothesis" / "fuzz")),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests.coverage import LEDGER, class_lines, coverage_lines, dump_if_asked  # noqa: E402 (after the profiles)


def cell_examples() -> int:
    """Examples per coverage cell: $SHADERKIT_CELL_EXAMPLES, else a sixth of the profile's examples
    (ci: 3 of 20, fuzz: 66 of 400), at least 3: Hypothesis spends the first on the simplest case."""
    env = os.environ.get("SHADERKIT_CELL_EXAMPLES")
    return int(env) if env else max(3, settings().max_examples // 6)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Outcomes of the property tests, for the dump (tests/differential.py compares two runs)."""
    if "test_properties.py::" not in report.nodeid or (report.when != "call" and not report.failed
                                                       and not report.skipped):
        return
    message = ""
    if report.failed:
        lines = [ln for ln in report.longreprtext.splitlines() if ln.startswith("E ")]
        message = (lines[0][1:].strip() if lines else report.longreprtext.strip().splitlines()[-1])[:300]
    LEDGER.outcome(report.nodeid, report.outcome, message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if LEDGER.zero_cells() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    dump_if_asked(LEDGER)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER.examples:
        return
    tr = terminalreporter
    tr.section(f"property examples per variant (profile {settings().max_examples} max, {cell_examples()} per cell)")
    variants = sorted({v for _, v in LEDGER.examples})
    levels = sorted({lv for lv, _ in LEDGER.examples})
    tr.write_line(f"{'variant':48} " + " ".join(f"{lv:>8}" for lv in levels))
    for v in variants:
        cells = []
        for lv in levels:
            n = LEDGER.examples.get((lv, v), 0)
            fail = LEDGER.first_failure.get((lv, v))
            cells.append(f"{n:>8}" if fail is None else f"{f'F@{fail}':>8}")
        tr.write_line(f"{v:48} " + " ".join(cells))
    tr.write_line(f"total examples: {sum(LEDGER.examples.values())}")
    lines = coverage_lines(LEDGER)
    if lines:
        tr.section("coverage: examples per class x input layout (!n: n cells with no example)")
        for line in lines:
            tr.write_line(line)
        for level, variant, cell in LEDGER.zero_cells():
            tr.write_line(f"ZERO CELL: {level} on {variant}, cell {cell}: no example of its class", red=True)
    plain = class_lines(LEDGER)
    if plain:
        tr.section("classes met by levels without cells (their Level.coverage)")
        for line in plain:
            tr.write_line(line)
    _tolerance_summary(tr)


def _tolerance_summary(tr: pytest.TerminalReporter) -> None:
    from runtime.oplib.tolerance_use import snapshot

    uses = snapshot()
    if not uses:
        return
    tr.section("tolerance use (allowed: elements where the rule allows a difference; used: they differed)")
    tr.write_line(f"{'rule':56} {'compared':>12} {'allowed':>10} {'used':>8} {'worst |diff|/tol':>17}")
    for rule, use in uses.items():
        tr.write_line(f"{rule:56} {use.compared:>12} {use.allowed:>10} {use.used:>8} {use.worst:>17.3g}")
