"""Choosing a variant for an op call beyond what core/select does: only among those that can run on the
device (its shared memory, subgroup width and cooperative-matrix shapes, not only its features)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import check_forced, device_unfit, pick
from runtime.oplib.requant import scale_reason


def runnable(manifest: Manifest, device: Device, role: str) -> Manifest:
    """The manifest cut down to the variants of `role` the device can run (features aside: pick checks those)."""
    return manifest.subset([v for v in manifest.entries(role=role) if not device_unfit(v, device)])


def input_layout_reason(axes: Mapping[str, Any], layout: str) -> str | None:
    """Why a variant (its `input_layout` axis) cannot read x laid out in `layout`, or None: it serves
    the layout it is specialized for, or any where it is generic (reads the layout as data)."""
    if axes.get("input_layout") in ("generic", layout):
        return None
    return f"it reads input_layout {axes.get('input_layout')!r}, the call has {layout!r}"


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


def layout_scale_entry(
    manifest: Manifest, device: Device, *, role: str, layout: str, scales: str, forced: str | None,
    preference: Callable[[VariantEntry], tuple[Any, ...]], candidates: Manifest | None = None,
) -> VariantEntry:
    """The variant of an int8 op whose variants have `input_layout` and scale `dtype` axes, for x in
    `layout` and scales stored as `scales`: the one `forced` names (the op's `variant` argument),
    checked to read `layout` and run here; else the most preferred (`preference`) of `candidates`
    (default: the variants of `role` the device runs) that reads `layout` (specialized for it, or
    generic) and stores its scales in a type that serves `scales` (a float32 variant serves float16
    scales where the device lacks the 16-bit features: the preference decides among them)."""

    if forced is not None:
        return forced_variant(manifest, device, forced, "variant", role=role,
                              accepts=lambda axes: input_layout_reason(axes, layout))

    def accepts(axes: Mapping[str, Any]) -> str | None:
        return input_layout_reason(axes, layout) or scale_reason(axes, scales)

    return pick(runnable(manifest, device, role) if candidates is None else candidates, role=role, accepts=accepts,
                preference=preference, supports=device.supports, what=f"input_layout={layout!r}, scale dtype {scales}")
