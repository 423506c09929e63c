"""Shared test set-up: Hypothesis profiles, the manifest, the device, per-variant example counts."""

from __future__ import annotations

import os
from collections import Counter
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

# (level, variant) -> examples run; (level, variant) -> examples run before the first failure
EXAMPLES: Counter[tuple[str, str]] = Counter()
FIRST_FAILURE: dict[tuple[str, str], int] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    tr = terminalreporter
    tr.section(f"property examples per variant (profile {settings().max_examples} max)")
    variants = sorted({v for _, v in EXAMPLES})
    levels = sorted({lv for lv, _ in EXAMPLES})
    tr.write_line(f"{'variant':48} " + " ".join(f"{lv:>8}" for lv in levels))
    for v in variants:
        cells = []
        for lv in levels:
            n = EXAMPLES.get((lv, v), 0)
            fail = FIRST_FAILURE.get((lv, v))
            cells.append(f"{n:>8}" if fail is None else f"{f'F@{fail}':>8}")
        tr.write_line(f"{v:48} " + " ".join(cells))
    tr.write_line(f"total examples: {sum(EXAMPLES.values())}")
