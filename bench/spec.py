"""Spec-sheet dense int8 tensor-core peaks, printed beside the measured tensor-core peak.

Vendor datasheet numbers without sparsity, keyed by a substring of the device name (the first match
wins, so the more specific names come first). A card not listed is "unknown": no number is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    tops: float | None  # dense int8 TOPS, None where the card is known but its number is not listed
    card: str  # what the entry means, e.g. "H100 SXM5"


# (name substring, spec); "NVL" parts have their own numbers, not listed here
SPEC_INT8: tuple[tuple[str, Spec], ...] = (
    ("H100 PCIe", Spec(1513.0, "H100 PCIe")),
    ("H100 NVL", Spec(None, "H100 NVL (not listed)")),
    ("H200 NVL", Spec(None, "H200 NVL (not listed)")),
    ("H100 SXM", Spec(1979.0, "H100 SXM5")),
    ("H100 80GB HBM3", Spec(1979.0, "H100 SXM5")),  # the SXM part's Vulkan / nvidia-smi name
    ("H200", Spec(1979.0, "H200 SXM")),  # 'NVIDIA H200'
)


def spec_int8(device_name: str) -> Spec | None:
    """The spec-sheet entry of `device_name`, or None where the card is unknown."""
    for needle, spec in SPEC_INT8:
        if needle.lower() in device_name.lower():
            return spec
    return None


def describe(device_name: str) -> str:
    """One line for the report: the number and the card it is for, or why there is none."""
    spec = spec_int8(device_name)
    if spec is None:
        return f"unknown (no spec-sheet entry for {device_name!r})"
    if spec.tops is None:
        return f"unknown ({spec.card})"
    return f"{spec.tops:.0f} TOPS dense int8 ({spec.card} datasheet, no sparsity)"
