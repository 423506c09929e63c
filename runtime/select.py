"""Pick the variant that serves a call: by role, axes and what the device supports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime.errors import MissingFeatureError
from runtime.manifest import Manifest

Supports = Callable[[Iterable[str]], list[str]]  # features -> the missing ones


def check_forced(
    manifest: Manifest,
    name: str,
    arg: str,
    *,
    role: str,
    accepts: Callable[[Mapping[str, Any]], str | None],
    supports: Supports,
) -> dict[str, Any]:
    """The entry of a variant the caller named; ValueError if it cannot serve this call."""
    if not isinstance(name, str):
        raise TypeError(f"{arg} must be a variant name (str) or None, got {name!r}")
    if name not in manifest.variants:
        known = ", ".join(manifest.names(role=role))
        raise ValueError(f"{arg}={name!r}: no such variant; {role} variants: {known}")
    entry = manifest.variants[name]
    if entry["role"] != role:
        raise ValueError(f"{arg}={name!r} is a {entry['role']} variant, not a {role} variant")
    reason = accepts(entry["axes"])
    if reason:
        raise ValueError(f"{arg}={name!r} cannot serve this call: {reason}")
    missing = supports(entry["features"])
    if missing:
        raise MissingFeatureError(missing[0], name)
    return entry


def pick(
    manifest: Manifest,
    *,
    role: str,
    accepts: Callable[[Mapping[str, Any]], str | None],
    preference: Callable[[Mapping[str, Any]], tuple[Any, ...]],
    supports: Supports,
    what: str,
) -> dict[str, Any]:
    """The most preferred variant (lowest preference key) that accepts the call and runs here."""
    candidates = [v for v in manifest.variants.values() if v["role"] == role and not accepts(v["axes"])]
    runnable = [v for v in candidates if not supports(v["features"])]
    if not runnable:
        if candidates:
            missing = supports(candidates[0]["features"])
            raise MissingFeatureError(missing[0], candidates[0]["name"])
        raise ValueError(f"no {role} variant in {manifest.path} serves {what}")
    return min(runnable, key=lambda v: (preference(v["axes"]), v["name"]))
