"""Lazy access to the ``vulkan`` cffi bindings.

Importing ``vulkan`` dlopens ``libvulkan.so.1`` at import time and raises a
bare ``OSError`` when the loader is missing; routing every import through
:func:`vk` turns that into a :class:`DeviceNotFoundError` with an install hint,
and keeps ``import runtime`` working on machines without Vulkan.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DeviceNotFoundError, VulkanError

_module: Any = None


def vk() -> Any:
    """Return the imported ``vulkan`` module (untyped, hence ``Any``)."""
    global _module
    if _module is None:
        try:
            module = importlib.import_module("vulkan")
        except (OSError, ImportError) as exc:
            raise DeviceNotFoundError(f"the Vulkan loader could not be loaded ({exc})") from exc
        _module = module
    return _module


def check(call: str, fn: Any, *args: Any) -> Any:
    """Call ``fn(*args)``, re-raising binding exceptions as :class:`VulkanError`."""
    mod = vk()
    try:
        return fn(*args)
    except (mod.VkError, mod.VkException) as exc:
        raise VulkanError(f"{call} failed: {type(exc).__name__}") from exc
