"""Vulkan instance / physical device / logical device setup, and the rules every user of them keeps.

:class:`Context` owns the handles every other runtime module needs (device,
queue, memory properties, limits) and knows how to tear them down.  It holds
no pipelines or buffers itself; their owners register a release callback with
:meth:`Context.track` so that :meth:`Context.close` can destroy them before the
device goes away.

Threads: every Vulkan call on a device, and every read or change of what it owns, happens under
:attr:`Context.lock` (one re-entrant lock per device), so calls from many threads are serialized
per device.  Work in flight: a submission marks :attr:`Context.in_flight` until its fence is
waited for; :meth:`Context.settle` waits for it, and everything that frees or resets a Vulkan
object calls it first, so nothing the GPU may still use is released, whatever exception
(Ctrl-C included) cut the submitting call short.
"""

from __future__ import annotations

import itertools
import numbers
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import DeviceLostError, DeviceNotFoundError, DeviceSelectorError, ShaderkitError
from .features import KNOWN_FEATURES, build_enable_chain, query_cooperative_matrix, query_features
from .vkapi import check, vk

_DEVICE_TYPES = {0: "other", 1: "integrated_gpu", 2: "discrete_gpu", 3: "virtual_gpu", 4: "cpu"}
# Lower is preferred when no selector is given.
_TYPE_RANK = {"discrete_gpu": 0, "integrated_gpu": 1, "virtual_gpu": 2, "cpu": 3, "other": 4}
UINT64_MAX = 0xFFFFFFFFFFFFFFFF
ENV_SELECTOR = "SHADERKIT_DEVICE"
# a device index spelled in ASCII digits only: str.isdigit() also says yes to '²' and '١'
_INDEX = re.compile(r"[0-9]+")
# waits for in-flight work retried this often when exceptions keep landing in the Python around them
_SETTLE_ATTEMPTS = 100


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


@dataclass(frozen=True)
class Selector:
    """A checked device selector: an index, a name substring, or None (the preferred device);
    ``source`` names where it came from ("selector" or "SHADERKIT_DEVICE") for messages."""

    value: int | str | None
    source: str

    def label(self) -> str:
        return f"{self.source}={self.value!r}"


def parse_selector(selector: Any) -> Selector:
    """Check the ``selector`` argument, or ``$SHADERKIT_DEVICE`` when it is None, before any Vulkan call.

    TypeError for a selector that is neither an int nor a str; DeviceSelectorError (a ValueError)
    for a negative index, an empty name, or an environment value that looks like an index but is
    not one in plain ASCII digits (``-1``, ``--1``, ``+2``, ``١``).
    """
    if selector is None:
        env = os.environ.get(ENV_SELECTOR, "").strip()
        return Selector(selector_from_text(env, ENV_SELECTOR) if env else None, ENV_SELECTOR)
    if isinstance(selector, bool) or not isinstance(selector, (numbers.Integral, str)):
        raise TypeError(
            f"selector must be a device index (int), part of a device name (str) or None, got {selector!r}"
        )
    if isinstance(selector, str):
        if not selector.strip():
            raise DeviceSelectorError(f"selector={selector!r} is empty; give part of a device name or an index")
        return Selector(selector, "selector")
    if int(selector) < 0:
        raise DeviceSelectorError(f"selector={int(selector)} is negative; device indices start at 0")
    return Selector(int(selector), "selector")


def selector_from_text(text: str, source: str) -> int | str:
    """A selector typed as text (an environment variable, a ``--device`` option named ``source``):
    an index when it is ASCII digits, else part of a device name.

    DeviceSelectorError (a ValueError) naming ``source`` for text that looks like a number but is
    not a plain index (``-1``, ``--1``, ``+2``, ``²``, ``١``): ``str.isdigit()`` + ``int()`` would
    take some of these and choke on others.
    """
    text = text.strip()
    if _INDEX.fullmatch(text):
        return int(text)
    digits = text.lstrip("+-")
    if not text or digits != text or all(ch.isdigit() or ch.isdecimal() for ch in digits):
        raise DeviceSelectorError(
            f"{source}={text!r} is neither a device index (a non-negative number in ASCII digits 0-9) "
            "nor part of a device name"
        )
    return text


def parse_mask(mask_features: Any) -> frozenset[str]:
    """Check ``mask_features``: a collection of feature names from :data:`KNOWN_FEATURES`.

    A plain string is refused (TypeError) rather than taken for the collection of its characters.
    """
    if isinstance(mask_features, (str, bytes)) or not isinstance(mask_features, Iterable):
        raise TypeError(
            f"mask_features must be a collection of feature names, e.g. ['shaderFloat16'], got {mask_features!r}"
        )
    names = list(mask_features)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"mask_features must hold feature names (str), got {name!r}")
    unknown = sorted(set(names) - set(KNOWN_FEATURES))
    if unknown:
        raise ValueError(f"mask_features: unknown feature(s) {unknown}; known features: {', '.join(KNOWN_FEATURES)}")
    return frozenset(names)


def _select(candidates: list[tuple[Any, Any]], selector: Selector) -> int:
    """Return the index into ``candidates`` ((physical, properties) pairs) to use."""
    names = [_str(p.deviceName) for _, p in candidates]
    if not candidates:
        raise DeviceNotFoundError("no Vulkan physical device found")
    wanted = selector.value
    if wanted is None:
        ranks = [_TYPE_RANK.get(_DEVICE_TYPES.get(p.deviceType, "other"), 9) for _, p in candidates]
        return min(range(len(candidates)), key=lambda i: (ranks[i], i))
    if isinstance(wanted, int):
        if wanted < len(candidates):
            return wanted
        raise DeviceSelectorError(
            f"{selector.label()}: device index {wanted} is out of range ({len(candidates)} device(s))", names
        )
    needle = wanted.lower()
    for i, name in enumerate(names):
        if needle in name.lower():
            return i
    raise DeviceSelectorError(f"{selector.label()}: no Vulkan device name contains {wanted!r}", names)


class Context:
    """Owner of the Vulkan instance, logical device and compute queue."""

    def __init__(self, selector: Any, mask_features: Any) -> None:
        # arguments first: a bad one is refused before any Vulkan call
        chosen = parse_selector(selector)
        masked = parse_mask(mask_features)
        self.closed = False
        # one per device: serializes submission, creation and destruction of children, close
        self.lock = threading.RLock()
        self.in_flight = False  # a submission whose completion nobody has waited for yet
        self.lost: str | None = None  # why the device cannot be used any more
        self._deferred: list[Callable[[], Any]] = []  # releases asked for while another thread held the lock
        self._tracked: dict[int, Callable[[], Any]] = {}
        self._ids = itertools.count()
        self.instance: Any = None
        self.device: Any = None
        self.instance, self.instance_api = _create_instance()
        try:
            self._open(chosen, masked)
        except BaseException:
            self.close()
            raise

    def _open(self, selector: Selector, masked: frozenset[str]) -> None:
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

    # -- the rules of use -------------------------------------------------------
    def check_usable(self) -> None:
        """Raise unless the device is open and not lost; call with :attr:`lock` held."""
        if self.closed:
            raise ShaderkitError(f"device {self.info.name!r} is closed")
        if self.lost is not None:
            raise DeviceLostError(f"device {self.info.name!r} cannot be used any more: {self.lost}; "
                                  "close it and create a new Device")

    def defer(self, release: Callable[[], Any]) -> None:
        """Queue a release that could not take the lock (a finalizer run by the GC on some thread
        while another thread holds the device); the next holder runs it (list.append is atomic)."""
        self._deferred.append(release)

    def run_deferred(self) -> None:
        """Run the queued releases; call with :attr:`lock` held."""
        while self._deferred:
            self._deferred.pop()()

    def settle(self) -> None:
        """Return only once no submission of this device is in flight; call with :attr:`lock` held.

        Waits with vkQueueWaitIdle (it also returns at once when a submission that was cut short
        never reached the queue), uninterruptibly: an exception landing in the Python around the
        wait (Ctrl-C, or any async exception) is held back, the wait retried (a bounded number of
        times) and the first such exception re-raised once the queue is idle.  A failed wait (a lost
        device) marks the device lost; its objects may then be destroyed.
        """
        if not self.in_flight:
            return
        held: BaseException | None = None
        for _ in range(_SETTLE_ATTEMPTS):
            try:
                result = vk().lib.vkQueueWaitIdle(self.queue)
                if result != 0:  # VK_SUCCESS; anything else is device loss or out of memory
                    self.lost = f"vkQueueWaitIdle returned {result} while waiting for a submission"
                self.in_flight = False
                break
            except BaseException as exc:  # held back until the queue is idle, then re-raised
                held = held or exc
        if held is not None:  # (also when every attempt was cut short: in_flight stays set, so the
            raise held        # next release settles again)

    def wait_idle(self) -> None:
        with self.lock:
            self.settle()
            if self.device is not None:
                vk().vkDeviceWaitIdle(self.device)

    def close(self) -> None:
        """Destroy tracked children (newest first), then the device and instance.

        Waits for any call another thread is making on the device, then for the GPU.
        """
        held: BaseException | None = None
        with self.lock:
            if self.closed:
                return
            self.closed = True
            v = vk()
            if self.device is not None:
                try:
                    self.settle()
                except BaseException as exc:  # a lost device must still be torn down; Ctrl-C waits for it
                    held = exc
                try:
                    v.vkDeviceWaitIdle(self.device)
                except Exception:  # likewise
                    pass
                self.in_flight = False
                self.run_deferred()
                while self._tracked:
                    _key, release = self._tracked.popitem()
                    release()
                v.vkDestroyDevice(self.device, None)
                self.device = None
            if self.instance is not None:
                v.vkDestroyInstance(self.instance, None)
                self.instance = None
        if held is not None and not isinstance(held, Exception):
            raise held
