"""Property tests of every variant in the manifest against its family's NumPy oracle.

Parametrized by the manifest and the family registry: every (family level, variant of a role the
level checks) pair is one test, drawing cases from the level's own Hypothesis strategy. A variant
added to variants.yaml, or a family added under runtime/families/, is tested here with no edit.
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
from runtime.core.registry import Level, VerificationError, families, family_of_role, levels_for_role
from runtime.core.select import device_unfit
from runtime.tools.check import repro_command
from tests.conftest import EXAMPLES, FIRST_FAILURE

MANIFEST = load_manifest()


def _params() -> list[Any]:
    out = []
    for entry in MANIFEST.variants.values():
        for family, level in levels_for_role(entry.role):
            out.append(pytest.param(level, entry, id=f"{family.name}.{level.name}-{entry.name}"))
    return out


def require_device_support(entry: VariantEntry) -> None:
    device = default_device()
    missing = device.supports(entry.features)
    if missing:
        pytest.skip(f"{entry.name}: device {device.info.name!r} lacks {', '.join(missing)}")
    unfit = device_unfit(entry, device)
    if unfit:
        pytest.skip(f"{entry.name}: cannot run on {device.info.name!r}: {unfit}")


def run_check(level: Level, variant: str, case: dict[str, Any]) -> None:
    key = (level.name, variant)
    EXAMPLES[key] += 1
    try:
        level.check(variant, case, None)
    except VerificationError as exc:
        FIRST_FAILURE.setdefault(key, EXAMPLES[key])
        raise VerificationError(
            f"{exc}\n  rerun: {repro_command(level.name, variant, case)}\n"
            f"  example: @example(case={json.dumps(case, sort_keys=True)})"
        ) from None


@pytest.mark.parametrize(("level", "entry"), _params())
@given(data=st.data())
def test_variant_matches_oracle(level: Level, entry: VariantEntry, data: st.DataObject) -> None:
    require_device_support(entry)
    case = data.draw(level.cases(entry, MANIFEST), label="case")
    run_check(level, entry.name, case)


def test_every_variant_is_covered() -> None:
    """Every role in the manifest is claimed by a registered family that checks it at some level."""
    assert MANIFEST.variants, "the manifest holds no variants"
    unclaimed = sorted({e.role for e in MANIFEST.variants.values() if family_of_role(e.role) is None})
    claimed = {name: fam.roles for name, fam in families().items()}
    assert not unclaimed, f"roles no registered family claims: {unclaimed} (families: {claimed})"
    unchecked = sorted(e.name for e in MANIFEST.variants.values() if not levels_for_role(e.role))
    assert not unchecked, f"variants no level checks: {unchecked}"
