"""shaderkit runtime: run manifest variants on Vulkan from NumPy, and the ops built on them.

Public API:
    conv2d_q8(...)          int8 conv2d as im2col + GEMM on the device
    conv2d_float(...)       float32 / float16 conv2d, the same im2col + GEMM machinery
    list_variants(family)   variant names in the build manifest
    Device, default_device  the Vulkan runner (see runtime/device.py)
    errors                  ShaderkitError and its typed subclasses
"""

from runtime.conv_float import conv2d_float
from runtime.conv_q8 import conv2d_q8
from runtime.device import Device, default_device
from runtime.errors import (
    DeviceNotFoundError,
    GuardBandError,
    LimitExceededError,
    MissingFeatureError,
    ShaderkitError,
)
from runtime.manifest import list_variants

__all__ = [
    "Device",
    "DeviceNotFoundError",
    "GuardBandError",
    "LimitExceededError",
    "MissingFeatureError",
    "ShaderkitError",
    "conv2d_float",
    "conv2d_q8",
    "default_device",
    "list_variants",
]
