"""Pick the variant that serves a call: by role, axes and what the device supports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .errors import MissingFeatureError
from .manifest import Manifest, VariantEntry

Supports = Callable[[Iterable[str]], list[str]]  # features -> the missing ones


def workgroup_over_limits(
    size: Sequence[int], limits: Mapping[str, Any]
) -> tuple[str, int, int, int | None] | None:
    """The first workgroup-size limit `size` (x, y, z) goes over, as (limit, value, maximum, axis; axis
    None for the invocation count), or None. The pickers and pipeline creation share it."""
    for axis, (n, most) in enumerate(zip(size, limits["maxComputeWorkGroupSize"], strict=True)):
        if int(n) > int(most):
            return f"maxComputeWorkGroupSize[{axis}]", int(n), int(most), axis
    invocations, most = int(size[0]) * int(size[1]) * int(size[2]), int(limits["maxComputeWorkGroupInvocations"])
    if invocations > most:
        return "maxComputeWorkGroupInvocations", invocations, most, None
    return None


def device_unfit(entry: VariantEntry, device: Any) -> str | None:
    """Why a variant cannot run on this device although it has the features, or None.

    Reads what the template declared (workgroup size, SHARED_BYTES spec constant, `subgroup_size`
    param, the cooperative-matrix shape axis) against what the device reports.
    """
    params, axes, limits = entry.params, entry.axes, device.info.limits
    # a size given by a spec constant is 0 in the manifest: the pipeline checks it when it is set
    over = workgroup_over_limits(entry.local_size, limits)
    if over is not None:
        name, n, most, axis = over
        if axis is not None:
            return f"its workgroup is {n} invocations along {'xyz'[axis]}, over {name} = {most}"
        return f"its workgroup has {n} invocations, over {name} = {most}"
    shared, limit = int(entry.declared.get("SHARED_BYTES", 0)), int(limits["maxComputeSharedMemorySize"])
    if shared > limit:
        return f"it declares {shared} bytes of shared memory, over maxComputeSharedMemorySize = {limit}"
    want_sg = params.get("subgroup_size")
    if want_sg and device.info.subgroup_size != want_sg:
        return f"it assumes subgroups of {want_sg} threads, the device has {device.info.subgroup_size}"
    coop = axes.get("coop")
    if isinstance(coop, Mapping):
        shapes = {(c["M"], c["N"], c["K"]) for c in device.info.cooperative_matrix
                  if c["A"] == "sint8" and c["Result"] == "sint32"}
        if (coop["m"], coop["n"], coop["k"]) not in shapes:
            return (f"the device reports no int8 cooperative-matrix shape M{coop['m']} N{coop['n']} K{coop['k']} "
                    f"(it reports {sorted(shapes) or 'none'})")
    return None


def unrunnable(entry: VariantEntry, device: Any) -> str | None:
    """Why this device cannot run a variant at all: the features it lacks, else :func:`device_unfit`'s
    reason; None where it can."""
    missing = device.supports(entry.features)
    return f"device lacks {', '.join(missing)}" if missing else device_unfit(entry, device)


def check_forced(
    manifest: Manifest,
    name: str,
    arg: str,
    *,
    role: str,
    accepts: Callable[[Mapping[str, Any]], str | None],
    supports: Supports,
) -> VariantEntry:
    """The entry of a variant the caller named; ValueError if it cannot serve this call."""
    if not isinstance(name, str):
        raise TypeError(f"{arg} must be a variant name (str) or None, got {name!r}")
    if name not in manifest.variants:
        known = ", ".join(manifest.names(role=role))
        raise ValueError(f"{arg}={name!r}: no such variant; {role} variants: {known}")
    entry = manifest.variants[name]
    if entry.role != role:
        raise ValueError(f"{arg}={name!r} is a {entry.role} variant, not a {role} variant")
    reason = accepts(entry.axes)
    if reason:
        raise ValueError(f"{arg}={name!r} cannot serve this call: {reason}")
    missing = supports(entry.features)
    if missing:
        raise MissingFeatureError(missing[0], name)
    return entry


def pick(
    manifest: Manifest,
    *,
    role: str,
    accepts: Callable[[Mapping[str, Any]], str | None],
    preference: Callable[[VariantEntry], tuple[Any, ...]],  # of the whole manifest entry
    supports: Supports,
    what: str,
) -> VariantEntry:
    """The most preferred variant (lowest preference key) that accepts the call and runs here."""
    candidates = [v for v in manifest.entries(role=role) if not accepts(v.axes)]
    runnable = [v for v in candidates if not supports(v.features)]
    if not runnable:
        if candidates:
            missing = supports(candidates[0].features)
            raise MissingFeatureError(missing[0], candidates[0].name)
        raise ValueError(f"no {role} variant in {manifest.path} serves {what}")
    return min(runnable, key=lambda v: (preference(v), v.name))
