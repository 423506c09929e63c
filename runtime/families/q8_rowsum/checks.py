"""Check of q8_rowsum: the op (one run_variant call) against the NumPy oracle, exact, with guard bands."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.registry import Level, VerificationError

from .op import rowsum_q8
from .oracle import rowsum

ROLES = ("rowsum",)


def materialize(case: dict[str, Any]) -> np.ndarray:
    shape = (case["rows"], case["cols"])
    if case.get("values") == "min":
        return np.full(shape, -128, np.int8)
    if case.get("values") == "max":
        return np.full(shape, 127, np.int8)
    return np.random.default_rng(case["seed"]).integers(-128, 128, shape, dtype=np.int8)


def check_rowsum(variant: str, case: dict[str, Any], device: Device | None) -> None:
    a = materialize(case)
    got = rowsum_q8(a, scale=case["scale"], workgroup=case["workgroup"], variant=variant, device=device, guard=True)
    want = rowsum(a, case["scale"])
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = int(bad[0])
        raise VerificationError(f"rowsum check of {variant} failed: {bad.size} of {want.size} rows differ; "
                                f"first at row {i}: got {int(got[i])}, expected {int(want[i])}")


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import rowsum_cases

    return rowsum_cases


LEVELS = (Level("rowsum", ROLES, check_rowsum, _cases, "exact row sums, any shape and workgroup size"),)
