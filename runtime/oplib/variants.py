"""Choosing a variant for an op call beyond what core/select does: only among those that can run on the
device (its shared memory, subgroup width and cooperative-matrix shapes, not only its features)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import check_forced, device_unfit


def runnable(manifest: Manifest, device: Device, role: str) -> Manifest:
    """The manifest cut down to the variants of `role` the device can run (features aside: pick checks those)."""
    return manifest.subset([v for v in manifest.entries(role=role) if not device_unfit(v, device)])


def forced_variant(
    manifest: Manifest, device: Device, name: Any, arg: str, *, role: str,
    accepts: Callable[[Mapping[str, Any]], str | None],
) -> VariantEntry:
    """The variant the op's argument `arg` names; ValueError/TypeError naming `arg` if it cannot serve
    the call (`accepts`) or run on this device."""
    entry = check_forced(manifest, name, arg, role=role, accepts=accepts, supports=device.supports)
    reason = device_unfit(entry, device)
    if reason:
        raise ValueError(f"{arg}={name!r} cannot run on {device.info.name}: {reason}")
    return entry
