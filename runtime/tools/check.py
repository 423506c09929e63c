"""Check one variant on one case with its family's checker: what the property tests, the soak and
`python -m runtime.tools.repro` share."""

from __future__ import annotations

import json
import shlex
from typing import Any

from runtime.core.device import Device
from runtime.core.manifest import load_manifest
from runtime.core.registry import Family, Level, VerificationError, families, family_of_role, levels_for_role

__all__ = ["VerificationError", "check", "family_of", "levels_of", "repro_command"]


def family_of(variant: str) -> Family:
    """The registered family whose roles include the variant's; ValueError if none claims it."""
    entry = load_manifest().variant(variant)
    family = family_of_role(entry.role)
    if family is None:
        known = {f.name: f.roles for f in families().values()}
        raise ValueError(f"variant {variant!r} has role {entry.role!r}, which no registered family claims "
                         f"(families and their roles: {known})")
    return family


def levels_of(variant: str) -> list[Level]:
    """The levels `variant` is checked at (its family's, then other families' that check its role)."""
    family_of(variant)  # a clear error when no family claims it
    return [lv for _, lv in levels_for_role(load_manifest().variant(variant).role)]


def check(level: str, variant: str, case: dict[str, Any], device: Device | None = None) -> None:
    """Run `variant` at `level` on `case`; raise VerificationError on any mismatch with the oracle."""
    levels = levels_of(variant)
    chosen = next((lv for lv in levels if lv.name == level), None)  # level names: first family wins
    if chosen is None:
        raise ValueError(f"variant {variant!r} is checked at levels {[lv.name for lv in levels]}, not {level!r}")
    chosen.check(variant, case, device)


def repro_command(level: str, variant: str, case: dict[str, Any]) -> str:
    """One shell command that reruns exactly this check."""
    return (f"python -m runtime.tools.repro --level {level} --variant {variant} "
            f"--case {shlex.quote(json.dumps(case, sort_keys=True))}")
