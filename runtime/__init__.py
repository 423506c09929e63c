"""shaderkit runtime: run manifest variants on Vulkan from NumPy, and the ops the families build on them.

The core (runtime/core/) knows no family:

    run_variant(name, inputs, outputs, *, push=None, spec=None, groups=None, device=None)
                                    one dispatch of any variant on NumPy arrays, by reflected names
    pack(x, layout) / unpack(buf, layout, shape) / Packed
                                    tensors in the layouts of variants.yaml
    Device, default_device          the Vulkan runner
    load_manifest, list_variants    what the build produced
    load_shader(path)               a .spv / .comp shaderkit did not generate, reflected for run_variant
    ShaderkitError and subclasses   typed errors

The ops come from the families (runtime/families/*), found by discovery the first time one is
asked for: ``runtime.conv2d_q8``, ``runtime.conv2d_float``, ``runtime.dwconv2d_q8``, ...;
``runtime.ops()`` lists them.
"""

from __future__ import annotations

from typing import Any

from runtime.core.device import Device, default_device
from runtime.core.errors import (
    DeviceNotFoundError,
    GuardBandError,
    LimitExceededError,
    MissingFeatureError,
    ShaderkitError,
)
from runtime.core.invoke import run_variant
from runtime.core.manifest import ManifestError, VariantEntry, list_variants, load_manifest
from runtime.core.packed import Packed, pack, unpack
from runtime.core.reflect import load_shader
from runtime.core.registry import VerificationError
from runtime.core.registry import op as _op
from runtime.core.registry import op_names as _op_names

__all__ = [
    "Device",
    "DeviceNotFoundError",
    "GuardBandError",
    "LimitExceededError",
    "ManifestError",
    "MissingFeatureError",
    "Packed",
    "ShaderkitError",
    "VariantEntry",
    "VerificationError",
    "default_device",
    "list_variants",
    "load_manifest",
    "load_shader",
    "ops",
    "pack",
    "run_variant",
    "unpack",
]


def ops() -> list[str]:
    """Names of the ops the registered families export (each is ``runtime.<name>``)."""
    return _op_names()


def __getattr__(name: str) -> Any:
    # ops are looked up in the registry, so adding a family never edits this file
    if not name.startswith("_"):
        found = _op(name)
        if found is not None:
            return found
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_op_names()))
