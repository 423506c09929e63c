"""The public entry point: :class:`Device` and :func:`default_device`."""

from __future__ import annotations

import atexit
import numbers
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .buffers import Buffer
from .context import Context, DeviceInfo, selector_from_text
from .dispatch import Runner, Step, group_counts, split_groups
from .errors import LimitExceededError
from .manifest import VariantEntry
from .pipelines import WORKGROUP_BASE, Pipeline, PipelineFactory

__all__ = ["Buffer", "Device", "DeviceInfo", "Pipeline", "Step", "default_device", "open_device"]


class Device:
    """A Vulkan device with one compute queue, ready to run manifest variants.

    ``selector`` is a device index or a case-insensitive substring of its
    name; ``None`` means ``$SHADERKIT_DEVICE`` if set (an index in ASCII digits
    or part of a name), else the first discrete GPU, else integrated, else
    whatever is left (e.g. lavapipe).  ``mask_features`` (a collection of names
    from ``runtime.core.features.KNOWN_FEATURES``) hides features from
    :attr:`info` and from the created device, to exercise fallback paths.

    Every method may be called from any thread: calls on one Device are serialized
    (one lock per device, held while a call records, submits and waits, or creates or
    destroys something); host-side work of the ops (checks, packing) runs outside it.
    For parallel work on one GPU use one Device per thread.
    """

    def __init__(self, selector: str | int | None = None, *, mask_features: Iterable[str] = ()) -> None:
        self._ctx = Context(selector, mask_features)
        self.info: DeviceInfo = self._ctx.info
        try:
            self._pipelines = PipelineFactory(self._ctx, self.info.features)
            self._runner = Runner(self._ctx, self._pipelines)
        except BaseException:
            self._ctx.close()
            raise

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Destroy every Vulkan object this device created.  Safe to call twice."""
        self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> Context:
        """The context, if open (a quick check; every Vulkan call re-checks under the lock)."""
        with self._ctx.lock:
            self._ctx.check_usable()
        return self._ctx

    # -- queries ----------------------------------------------------------------
    def supports(self, features: Iterable[str]) -> list[str]:
        """Return the subset of ``features`` this device lacks (in the given order)."""
        return [f for f in features if not self.info.features.get(f, False)]

    def describe(self) -> str:
        """Multi-line human-readable summary of the device."""
        i = self.info
        lim = i.limits
        on = [name for name, ok in i.features.items() if ok]
        off = [name for name, ok in i.features.items() if not ok]
        lines = [
            f"{i.name} ({i.device_type}, vendor 0x{i.vendor_id:04x})",
            f"  driver:        {i.driver_name} {i.driver_info}".rstrip(),
            f"  Vulkan:        {i.api_version}",
            f"  subgroup size: {i.subgroup_size}",
            f"  workgroups:    size <= {lim['maxComputeWorkGroupSize']}, "
            f"invocations <= {lim['maxComputeWorkGroupInvocations']}, count <= {lim['maxComputeWorkGroupCount']}",
            f"  memory:        storage range {lim['maxStorageBufferRange']} B, uniform range "
            f"{lim['maxUniformBufferRange']} B, shared {lim['maxComputeSharedMemorySize']} B, "
            f"push constants {lim['maxPushConstantsSize']} B",
            f"  timestamps:    period {lim['timestampPeriod']} ns, {self._ctx.timestamp_bits} valid bits",
            f"  features:      {', '.join(on) or 'none'}",
            f"  missing:       {', '.join(off) or 'none'}",
        ]
        if i.cooperative_matrix:
            shapes = sorted(
                {f"{c['M']}x{c['N']}x{c['K']} {c['A']}*{c['B']}+{c['C']}->{c['Result']}" for c in i.cooperative_matrix}
            )
            lines.append(f"  coopmat:       {'; '.join(shapes)}")
        return "\n".join(lines)

    # -- resources --------------------------------------------------------------
    def pipeline(self, variant: VariantEntry, spec: Mapping[Any, Any] | None = None) -> Pipeline:
        """Return the (cached) pipeline for a manifest variant entry and spec values by name (or id).

        A template may state its shared-memory use as the spec constant SHARED_BYTES; a variant
        over the device's limit is refused here rather than left to the driver (which may lose
        the device instead of failing the pipeline).
        """
        self._live()
        if not isinstance(variant, VariantEntry):
            raise TypeError(f"variant must be a VariantEntry (runtime.load_manifest().variant(name)), got {variant!r}")
        shared = int(variant.declared.get("SHARED_BYTES", 0))
        limit = int(self.info.limits["maxComputeSharedMemorySize"])
        if shared > limit:
            raise LimitExceededError(
                "maxComputeSharedMemorySize", shared, limit, f"variant {variant.name!r} shared memory"
            )
        return self._pipelines.get(variant, spec)

    def check_dispatch(self, variant: VariantEntry, groups: Sequence[int], what: str = "") -> None:
        """Raise LimitExceededError (a ValueError) naming ``what`` if ``groups`` workgroups of
        ``variant`` cannot be dispatched here: an axis over maxComputeWorkGroupCount that the variant
        cannot split (it declares no WORKGROUP_BASE_* spec constant for it), invocation ids past
        uint32, or too many pieces.  Lets an op refuse a call in its own terms before packing.
        """
        if not isinstance(variant, VariantEntry):
            raise TypeError(f"variant must be a VariantEntry, got {variant!r}")
        counts = group_counts(groups, what or variant.name)
        local = [max(1, int(x or 1)) for x in variant.local_size]
        splittable = [variant.spec_constant(name) is not None for name in WORKGROUP_BASE]
        split_groups(variant.name, counts, local, self.info.limits["maxComputeWorkGroupCount"], splittable, what)

    def alloc(self, nbytes: int, *, kind: str = "storage", guard: bool = False, fill: int | None = None) -> Buffer:
        """Allocate a host-visible buffer; contents are undefined unless ``fill`` (a byte) is given."""
        if fill is not None and (isinstance(fill, bool) or not isinstance(fill, numbers.Integral)
                                 or not 0 <= int(fill) <= 255):
            raise ValueError(f"fill must be a byte value, an int in [0, 255], got {fill!r}")
        buf = Buffer(self._live(), nbytes, kind=kind, guard=bool(guard))
        if fill is not None:
            buf.fill(fill)
        return buf

    def upload(self, array: np.ndarray, *, kind: str = "storage", guard: bool = False) -> Buffer:
        """Allocate a buffer holding a copy of ``array``'s bytes."""
        data = np.ascontiguousarray(array)
        buf = Buffer(self._live(), data.nbytes, kind=kind, guard=bool(guard))
        buf.write(data)
        return buf

    def live_objects(self) -> dict[str, int]:
        """Vulkan objects this device holds now, by kind, for leak checks (all 0 once closed).

        ``tracked`` is everything :meth:`close` would destroy (the other counts are parts of it,
        plus the fixed command pool, fence and pipeline cache).
        """
        kinds = ("tracked", "buffers", "pipelines", "shader_modules", "pipeline_layouts", "descriptor_pools",
                 "query_pools")
        with self._ctx.lock:
            if self.closed:
                return dict.fromkeys(kinds, 0)
            tracked = list(self._ctx._tracked.values())
            counts = (
                len(tracked),
                sum(isinstance(release, weakref.finalize) for release in tracked),  # Buffer registers its finalizer
                self._pipelines.cached,
                len(self._pipelines._modules),
                len(self._pipelines._layouts),
                int(self._runner._desc_pool is not None),
                int(self._runner._query_pool is not None),
            )
        return dict(zip(kinds, counts, strict=True))

    def run(self, steps: Sequence[Step], *, timestamps: bool = False) -> list[float] | None:
        """Record ``steps`` into one command buffer (barriers in between), submit and wait.

        With ``timestamps=True`` returns the GPU time of each step in seconds.  Safe from any
        thread (runs are serialized per device); an exception, Ctrl-C included, that cuts the call
        short after the submission returns only once the GPU has finished with everything it used.
        """
        return self._runner.run(steps, bool(timestamps))

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.info.device_type
        return f"<Device {self.info.name!r} {state}>"


_default: Device | None = None
_default_lock = threading.Lock()


def default_device() -> Device:
    """Process-wide shared :class:`Device`, created on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Device()
            atexit.register(_default.close)
        return _default


def open_device(option: str | None, name: str = "--device") -> Device:
    """The device a command-line option `name` asks for: an index in ASCII digits or part of a device
    name (DeviceSelectorError naming the option for text that is neither, see selector_from_text), or
    :func:`default_device` when the option was not given."""
    return default_device() if option is None else Device(selector_from_text(option, name))
