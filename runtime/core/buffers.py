"""Host-visible storage / uniform buffers, optionally wrapped in guard bands."""

from __future__ import annotations

import numbers
import weakref
from typing import Any

import numpy as np

from .context import Context
from .errors import GuardBandError, LimitExceededError, ShaderkitError
from .vkapi import check, vk

GUARD_BYTES = 256
KINDS = ("storage", "uniform")
# Bytes that shaders are unlikely to produce by accident (not 0, not 0xFF, not
# a small integer or a common float), varying with position so a shifted copy
# of the band would still be noticed.
_GUARD_PATTERN = ((np.arange(4096, dtype=np.uint32) * 37 + 0xA5) & 0xFF).astype(np.uint8)


def _round_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _pattern(n: int) -> np.ndarray:
    return np.resize(_GUARD_PATTERN, n)


def check_size(ctx: Context, nbytes: int, kind: str) -> None:
    """Validate a buffer request against the kind and the device's range limits."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"buffer kind must be one of {KINDS}, got {kind!r}")
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral):
        raise TypeError(f"buffer size (nbytes) must be an int, got {nbytes!r}")
    if nbytes <= 0:
        raise ValueError(f"buffer size must be positive, got {nbytes}")
    limit = "maxStorageBufferRange" if kind == "storage" else "maxUniformBufferRange"
    if nbytes > ctx.limits[limit]:
        raise LimitExceededError(limit, nbytes, ctx.limits[limit], f"{kind} buffer of {nbytes} bytes")


def _memory_candidates(ctx: Context, type_bits: int) -> list[int]:
    """Host-visible coherent memory types, best first."""
    v = vk()
    props = ctx.memory_properties
    need = v.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | v.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
    scored = []
    for i in range(props.memoryTypeCount):
        flags = props.memoryTypes[i].propertyFlags
        if not (type_bits >> i) & 1 or flags & need != need:
            continue
        heap = props.memoryHeaps[props.memoryTypes[i].heapIndex]
        # Device-local + host-visible is only worth it when it is a real
        # resizable BAR rather than the small 256 MiB window.
        big_bar = bool(flags & v.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) and heap.size > (1 << 30)
        cached = bool(flags & v.VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
        scored.append((not big_bar, not cached, i))
    return [i for *_, i in sorted(scored)]


def _release(ctx: Context, key: int, buffer: Any, memory: Any) -> None:
    """Destroy one buffer: from free(), Context.close, or the GC on whichever thread it runs."""
    # A GC finalizer must never block on the device lock (its thread may hold another device's
    # lock, or the GIL-ordered wait could deadlock): when the lock is taken, the holder runs it.
    if not ctx.lock.acquire(blocking=False):
        ctx.defer(lambda: _release(ctx, key, buffer, memory))
        return
    try:
        if ctx.device is not None:
            ctx.settle()  # the GPU may still read or write it
            v = vk()
            v.vkUnmapMemory(ctx.device, memory)
            v.vkDestroyBuffer(ctx.device, buffer, None)
            v.vkFreeMemory(ctx.device, memory, None)
        ctx.untrack(key)
    finally:
        ctx.lock.release()


class Buffer:
    """A host-visible Vulkan buffer; the "user region" is what shaders see at index 0.

    With ``guard=True`` the user region is surrounded, inside the same
    ``VkBuffer``, by canary bytes that :meth:`check_guards` verifies.  The
    descriptor then covers the user region *and* the trailing band, because
    drivers that bounds-check storage accesses (lavapipe does) would
    otherwise silently drop the very out-of-bounds writes the band is meant to
    catch; ``.length()`` of a runtime array therefore includes the band.
    """

    def __init__(self, ctx: Context, nbytes: int, *, kind: str = "storage", guard: bool = False) -> None:
        check_size(ctx, nbytes, kind)
        self.nbytes = int(nbytes)
        self.kind = kind
        self.guard = guard
        self._ctx = ctx
        align = max(ctx.limits["minStorageBufferOffsetAlignment"], ctx.limits["minUniformBufferOffsetAlignment"], 16)
        self.offset = _round_up(GUARD_BYTES, align) if guard else 0
        self._post = GUARD_BYTES if guard else 0
        self._total = _round_up(self.offset + self.nbytes + self._post, 4)
        self._bytes: np.ndarray | None = None
        with ctx.lock:
            ctx.check_usable()
            self._create(ctx, self._total)

    def _create(self, ctx: Context, total: int) -> None:
        v = vk()
        usage = (
            v.VK_BUFFER_USAGE_STORAGE_BUFFER_BIT
            | v.VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT
            | v.VK_BUFFER_USAGE_TRANSFER_SRC_BIT
            | v.VK_BUFFER_USAGE_TRANSFER_DST_BIT
        )
        info = v.VkBufferCreateInfo(size=total, usage=usage, sharingMode=v.VK_SHARING_MODE_EXCLUSIVE)
        self.handle = check("vkCreateBuffer", v.vkCreateBuffer, ctx.device, info, None)
        memory = None
        finalizer: weakref.finalize | None = None
        key = ctx.new_key()
        try:
            memory = self._memory = self._allocate(ctx, total)
            v.vkBindBufferMemory(ctx.device, self.handle, memory, 0)
            mapped = v.vkMapMemory(ctx.device, memory, 0, total, 0)
            finalizer = weakref.finalize(self, _release, ctx, key, self.handle, memory)
            ctx.track(finalizer, key)
            self._finalizer = finalizer
        except BaseException:
            # nothing was submitted with it yet: destroy what exists (once) and pass the error on
            if finalizer is not None:
                finalizer.detach()
            ctx.untrack(key)
            if memory is not None:
                v.vkFreeMemory(ctx.device, memory, None)
            v.vkDestroyBuffer(ctx.device, self.handle, None)
            raise
        self._bytes = np.frombuffer(mapped, dtype=np.uint8, count=total)
        if self.guard:
            self._bytes[: self.offset] = _pattern(self.offset)
            self._bytes[self.offset + self.nbytes :] = _pattern(total - self.offset - self.nbytes)

    def _allocate(self, ctx: Context, size: int) -> Any:
        v = vk()
        reqs = v.vkGetBufferMemoryRequirements(ctx.device, self.handle)
        candidates = _memory_candidates(ctx, reqs.memoryTypeBits)
        if not candidates:
            raise ShaderkitError("device has no host-visible coherent memory type for buffers")
        last: Exception | None = None
        for index in candidates:
            info = v.VkMemoryAllocateInfo(allocationSize=reqs.size, memoryTypeIndex=index)
            try:
                return v.vkAllocateMemory(ctx.device, info, None)
            except (v.VkErrorOutOfDeviceMemory, v.VkErrorOutOfHostMemory) as exc:
                last = exc  # try the next (usually larger) heap
        raise ShaderkitError(f"could not allocate {size} bytes of host-visible memory") from last

    # -- descriptor helpers -------------------------------------------------
    def descriptor_range(self, kind: str) -> tuple[Any, int, int]:
        """(VkBuffer, offset, range) to put in a descriptor of ``kind``."""
        self._alive()
        if self.guard and kind == "storage":
            return self.handle, self.offset, self._total - self.offset
        return self.handle, self.offset, self.nbytes

    # -- host access ----------------------------------------------------------
    def _alive(self) -> np.ndarray:
        if self._bytes is None or not self._finalizer.alive:
            self._bytes = None
            raise ShaderkitError("buffer has been freed (or its device closed)")
        return self._bytes

    @property
    def freed(self) -> bool:
        return self._bytes is None or not self._finalizer.alive

    def read(self, dtype: Any = np.uint8) -> np.ndarray:
        """Return a copy of the user region viewed as ``dtype``."""
        dt = np.dtype(dtype)
        if self.nbytes % dt.itemsize:
            raise ValueError(f"buffer of {self.nbytes} bytes is not a whole number of {dt} elements")
        # under the device lock: another thread cannot free the mapping (or close the device) mid-copy
        with self._ctx.lock:
            raw = self._alive()[self.offset : self.offset + self.nbytes]
            out: np.ndarray = raw.view(dt).copy()
        return out

    def write(self, array: Any, offset: int = 0) -> None:
        """Copy ``array``'s bytes into the user region starting at byte ``offset``."""
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if offset < 0 or offset + data.size > self.nbytes:
            raise ValueError(f"writing {data.size} bytes at offset {offset} overflows a {self.nbytes}-byte buffer")
        start = self.offset + offset
        with self._ctx.lock:
            self._alive()[start : start + data.size] = data

    def fill(self, byte: int) -> None:
        """Set every byte of the user region to ``byte`` (an int in [0, 255])."""
        if isinstance(byte, bool) or not isinstance(byte, numbers.Integral) or not 0 <= int(byte) <= 255:
            raise ValueError(f"fill must be a byte value, an int in [0, 255], got {byte!r}")
        with self._ctx.lock:
            self._alive()[self.offset : self.offset + self.nbytes] = np.uint8(int(byte))

    def check_guards(self, label: str = "") -> None:
        """Raise :class:`GuardBandError` naming the first corrupted canary byte."""
        if not self.guard:
            return
        with self._ctx.lock:
            raw = self._alive()
            before = raw[: self.offset].copy()
            after = raw[self.offset + self.nbytes :].copy()
        bad = np.flatnonzero(before != _pattern(self.offset))
        if bad.size:
            raise GuardBandError(label, "before", int(bad[0]) - self.offset, self.nbytes)
        bad = np.flatnonzero(after != _pattern(after.size))
        if bad.size:
            raise GuardBandError(label, "after", self.nbytes + int(bad[0]), self.nbytes)

    def free(self) -> None:
        """Release the Vulkan objects now (once the GPU is done with them); further use raises.
        Idempotent; waits for a call another thread is making on the device."""
        with self._ctx.lock:
            self._bytes = None
            self._finalizer()

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def __repr__(self) -> str:
        state = "freed" if self.freed else f"{self.kind}{', guarded' if self.guard else ''}"
        return f"<Buffer {self.nbytes} bytes {state}>"
