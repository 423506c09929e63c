"""Exception types raised by the shaderkit Vulkan runtime.

Every error derives from :class:`ShaderkitError` so callers can catch the
whole family at once; some also derive from a builtin (``ValueError``) where
the failure is really a bad argument.
"""

from __future__ import annotations

INSTALL_HINT = "sudo apt-get install -y libvulkan1 mesa-vulkan-drivers"


class ShaderkitError(Exception):
    """Base class of every runtime error."""


class DeviceNotFoundError(ShaderkitError):
    """No usable Vulkan loader, no physical device, or no device matching a selector."""

    def __init__(self, reason: str, available: list[str] | None = None) -> None:
        self.reason = reason
        self.available = list(available or [])
        lines = [reason]
        if self.available:
            lines.append("available devices:")
            lines.extend(f"  [{i}] {name}" for i, name in enumerate(self.available))
        lines.append(f"a CPU Vulkan driver can be installed with: {INSTALL_HINT}")
        super().__init__("\n".join(lines))


class DeviceSelectorError(DeviceNotFoundError, ValueError):
    """The device selector (``Device(selector)`` or ``$SHADERKIT_DEVICE``) is malformed or matches
    no device: a bad value, hence also a ValueError."""


class DeviceLostError(ShaderkitError):
    """The device was lost (or work on it could not be waited for); create a new Device."""


class MissingFeatureError(ShaderkitError):
    """The device lacks (or was told to hide) a feature that a variant needs."""

    def __init__(self, feature: str, variant: str) -> None:
        self.feature = feature
        self.variant = variant
        super().__init__(
            f"variant {variant!r} needs device feature {feature!r}, "
            "which this device does not support (or it was masked)"
        )


class LimitExceededError(ShaderkitError, ValueError):
    """A request goes over a device limit (``VkPhysicalDeviceLimits``)."""

    def __init__(self, limit: str, value: int, maximum: int, what: str = "") -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}{value} exceeds device limit {limit} = {maximum}")


class GuardBandError(ShaderkitError):
    """A shader wrote into the canary bytes around a guarded buffer.

    ``offset`` is relative to the start of the user region: negative for the
    band before it, ``>= nbytes`` for the band after it (``past_end`` then
    counts from the end of the user region).
    """

    def __init__(self, label: str, side: str, offset: int, nbytes: int) -> None:
        self.label = label
        self.side = side
        self.offset = offset
        self.past_end = offset - nbytes if side == "after" else None
        where = f"{offset}" if side == "before" else f"+{offset - nbytes} past the end"
        name = f"{label}: " if label else ""
        super().__init__(
            f"{name}guard band {side} the buffer was overwritten; first corrupted "
            f"byte at offset {where} of the {nbytes}-byte user region"
        )


class VulkanError(ShaderkitError):
    """A Vulkan call failed (wraps the exception raised by the bindings)."""
