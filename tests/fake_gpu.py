"""Device limits of a described (not opened) GPU, for tests of the pickers."""

from __future__ import annotations

from typing import Any

# what an H100 / H200 reports through Vulkan (driver 580): the limits device_unfit reads
H100_LIMITS: dict[str, Any] = {
    "maxComputeSharedMemorySize": 49152,
    "maxComputeWorkGroupInvocations": 1024,
    "maxComputeWorkGroupSize": (1024, 1024, 64),
}
