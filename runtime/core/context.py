"""Vulkan instance / physical device / logical device setup.

:class:`Context` owns the handles every other runtime module needs (device,
queue, memory properties, limits) and knows how to tear them down.  It holds
no pipelines or buffers itself; their owners register a release callback with
:meth:`Context.track` so that :meth:`Context.close` can destroy them before the
device goes away.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import DeviceNotFoundError
from .features import KNOWN_FEATURES, build_enable_chain, query_cooperative_matrix, query_features
from .vkapi import check, vk

_DEVICE_TYPES = {0: "other", 1: "integrated_gpu", 2: "discrete_gpu", 3: "virtual_gpu", 4: "cpu"}
# Lower is preferred when no selector is given.
_TYPE_RANK = {"discrete_gpu": 0, "integrated_gpu": 1, "virtual_gpu": 2, "cpu": 3, "other": 4}
UINT64_MAX = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class DeviceInfo:
    """Static description of the selected physical device."""

    name: str
    driver_name: str
    driver_info: str
    api_version: str
    device_type: str
    vendor_id: int
    subgroup_size: int
    limits: dict[str, Any]
    features: dict[str, bool]
    cooperative_matrix: list[dict[str, Any]]
    extensions: frozenset[str] = field(default_factory=frozenset)


def _version(packed: int) -> tuple[int, int, int]:
    return (packed >> 22) & 0x7F, (packed >> 12) & 0x3FF, packed & 0xFFF


def _str(value: Any) -> str:
    v = vk()
    if isinstance(value, v.ffi.CData):
        return str(v.ffi.string(value).decode("utf-8", "replace"))
    return str(value)


def _create_instance() -> tuple[Any, int]:
    v = vk()
    try:
        loader_version = v.vkEnumerateInstanceVersion()
    except Exception:  # a 1.0 loader lacks the entry point
        loader_version = v.VK_MAKE_VERSION(1, 0, 0)
    api = min(loader_version, v.VK_MAKE_VERSION(1, 3, 0))
    available = {_str(e.extensionName) for e in v.vkEnumerateInstanceExtensionProperties(None)}
    extensions = []
    flags = 0
    # Lets MoltenVK-style portability drivers show up in the enumeration.
    if "VK_KHR_portability_enumeration" in available:
        extensions.append("VK_KHR_portability_enumeration")
        flags |= v.VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR
    app_info = v.VkApplicationInfo(
        pApplicationName="shaderkit", applicationVersion=1, pEngineName="shaderkit", apiVersion=api
    )
    create_info = v.VkInstanceCreateInfo(
        flags=flags,
        pApplicationInfo=app_info,
        enabledExtensionCount=len(extensions),
        ppEnabledExtensionNames=extensions or None,
    )
    try:
        instance = v.vkCreateInstance(create_info, None)
    except (v.VkError, v.VkException) as exc:
        raise DeviceNotFoundError(f"vkCreateInstance failed ({type(exc).__name__}); no Vulkan driver?") from exc
    return instance, api


def _device_extensions(physical: Any) -> frozenset[str]:
    v = vk()
    return frozenset(_str(e.extensionName) for e in v.vkEnumerateDeviceExtensionProperties(physical, None))


def _select(candidates: list[tuple[Any, Any]], selector: str | int | None) -> int:
    """Return the index into ``candidates`` ((physical, properties) pairs) to use."""
    names = [_str(p.deviceName) for _, p in candidates]
    if not candidates:
        raise DeviceNotFoundError("no Vulkan physical device found")
    if selector is None:
        env = os.environ.get("SHADERKIT_DEVICE", "").strip()
        if env:
            selector = int(env) if env.lstrip("-").isdigit() else env
    if selector is None:
        ranks = [_TYPE_RANK.get(_DEVICE_TYPES.get(p.deviceType, "other"), 9) for _, p in candidates]
        return min(range(len(candidates)), key=lambda i: (ranks[i], i))
    if isinstance(selector, int):
        if 0 <= selector < len(candidates):
            return selector
        raise DeviceNotFoundError(f"device index {selector} is out of range", names)
    needle = selector.lower()
    for i, name in enumerate(names):
        if needle in name.lower():
            return i
    raise DeviceNotFoundError(f"no Vulkan device name contains {selector!r}", names)


class Context:
    """Owner of the Vulkan instance, logical device and compute queue."""

    def __init__(self, selector: str | int | None, mask_features: Iterable[str]) -> None:
        self.closed = False
        self._tracked: dict[int, Callable[[], Any]] = {}
        self._ids = itertools.count()
        self.instance, self.instance_api = _create_instance()
        self.device: Any = None
        try:
            self._open(selector, set(mask_features))
        except BaseException:
            self.close()
            raise

    def _open(self, selector: str | int | None, masked: set[str]) -> None:
        v = vk()
        physicals = list(v.vkEnumeratePhysicalDevices(self.instance))
        candidates = [(pd, v.vkGetPhysicalDeviceProperties(pd)) for pd in physicals]
        index = _select(candidates, selector)
        self.physical, props = candidates[index]
        self.device_api = min(int(props.apiVersion), int(self.instance_api))
        api2 = _version(self.device_api)[:2]
        extensions = _device_extensions(self.physical)

        supported = query_features(self.physical, api2, extensions)
        features = {name: supported[name] and name not in masked for name in KNOWN_FEATURES}
        coop = query_cooperative_matrix(self.instance, self.physical, extensions)
        if not (features["cooperativeMatrix"] or features["cooperativeMatrixNV"]):
            coop = []

        subgroup_size, driver_name, driver_info = 0, "", ""
        if api2 >= (1, 1):
            sub = v.VkPhysicalDeviceSubgroupProperties()
            chain: Any = sub
            drv = None
            if api2 >= (1, 2):
                drv = v.VkPhysicalDeviceDriverProperties(pNext=sub)
                chain = drv
            props2 = v.VkPhysicalDeviceProperties2(pNext=chain)
            v.vkGetPhysicalDeviceProperties2(self.physical, props2)
            subgroup_size = int(sub.subgroupSize)
            if drv is not None:
                driver_name, driver_info = _str(drv.driverName), _str(drv.driverInfo)

        lim = props.limits
        self.limits: dict[str, Any] = {
            "maxStorageBufferRange": int(lim.maxStorageBufferRange),
            "maxUniformBufferRange": int(lim.maxUniformBufferRange),
            "maxComputeWorkGroupCount": tuple(int(x) for x in lim.maxComputeWorkGroupCount),
            "maxComputeWorkGroupSize": tuple(int(x) for x in lim.maxComputeWorkGroupSize),
            "maxComputeWorkGroupInvocations": int(lim.maxComputeWorkGroupInvocations),
            "maxPushConstantsSize": int(lim.maxPushConstantsSize),
            "maxComputeSharedMemorySize": int(lim.maxComputeSharedMemorySize),
            "timestampPeriod": float(lim.timestampPeriod),
            "minStorageBufferOffsetAlignment": int(lim.minStorageBufferOffsetAlignment),
            "minUniformBufferOffsetAlignment": int(lim.minUniformBufferOffsetAlignment),
            "maxBoundDescriptorSets": int(lim.maxBoundDescriptorSets),
        }

        families = list(v.vkGetPhysicalDeviceQueueFamilyProperties(self.physical))
        compute = [i for i, f in enumerate(families) if f.queueFlags & v.VK_QUEUE_COMPUTE_BIT]
        if not compute:
            raise DeviceNotFoundError(f"device {_str(props.deviceName)!r} has no compute queue")
        # A family with timestamps is preferred so that run(timestamps=True) works.
        self.queue_family = next((i for i in compute if families[i].timestampValidBits > 0), compute[0])
        self.timestamp_bits = int(families[self.queue_family].timestampValidBits)

        self.info = DeviceInfo(
            name=_str(props.deviceName),
            driver_name=driver_name,
            driver_info=driver_info,
            api_version=".".join(str(x) for x in _version(int(props.apiVersion))),
            device_type=_DEVICE_TYPES.get(int(props.deviceType), "other"),
            vendor_id=int(props.vendorID),
            subgroup_size=subgroup_size,
            limits=dict(self.limits),
            features=features,
            cooperative_matrix=coop,
            extensions=extensions,
        )
        self._create_device(api2, extensions, {n for n, on in features.items() if on})

    def _create_device(self, api2: tuple[int, int], extensions: frozenset[str], wanted: set[str]) -> None:
        v = vk()
        enable = build_enable_chain(api2, extensions, wanted)
        ext_names = list(enable.extensions)
        if "VK_KHR_portability_subset" in extensions:
            ext_names.append("VK_KHR_portability_subset")  # the spec requires enabling it when listed
        priorities = [1.0]
        queue_info = v.VkDeviceQueueCreateInfo(
            queueFamilyIndex=self.queue_family, queueCount=1, pQueuePriorities=priorities
        )
        queue_infos = [queue_info]
        create_info = v.VkDeviceCreateInfo(
            pNext=enable.features2,
            queueCreateInfoCount=1,
            pQueueCreateInfos=queue_infos,
            enabledExtensionCount=len(ext_names),
            ppEnabledExtensionNames=ext_names or None,
        )
        self.device = check("vkCreateDevice", v.vkCreateDevice, self.physical, create_info, None)
        del enable, queue_info, create_info
        self.enabled_extensions = frozenset(ext_names)
        self.queue = v.vkGetDeviceQueue(self.device, self.queue_family, 0)
        self.memory_properties = v.vkGetPhysicalDeviceMemoryProperties(self.physical)

    def new_key(self) -> int:
        """Reserve a key for :meth:`track` (lets a finalizer know its key up front)."""
        return next(self._ids)

    def track(self, release: Callable[[], Any], key: int | None = None) -> int:
        """Register a callback that destroys a child object; returns the key for :meth:`untrack`."""
        if key is None:
            key = self.new_key()
        self._tracked[key] = release
        return key

    def untrack(self, key: int) -> None:
        self._tracked.pop(key, None)

    def wait_idle(self) -> None:
        if self.device is not None:
            vk().vkDeviceWaitIdle(self.device)

    def close(self) -> None:
        """Destroy tracked children (newest first), then the device and instance."""
        if self.closed:
            return
        self.closed = True
        v = vk()
        if self.device is not None:
            try:
                v.vkDeviceWaitIdle(self.device)
            except Exception:  # a lost device must still be torn down
                pass
            while self._tracked:
                _key, release = self._tracked.popitem()
                release()
            v.vkDestroyDevice(self.device, None)
            self.device = None
        if self.instance is not None:
            v.vkDestroyInstance(self.instance, None)
            self.instance = None
