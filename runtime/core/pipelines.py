"""Compute pipelines built from a manifest variant entry (:class:`~runtime.core.manifest.VariantEntry`)."""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import Context
from .errors import LimitExceededError, MissingFeatureError, ShaderkitError
from .glsl_types import pack_value, push_constant_size
from .manifest import Binding, PushConstants, VariantEntry
from .select import workgroup_over_limits
from .vkapi import check, vk

_AXES = ("x", "y", "z")
# Spec constants (uint, default 0) through which a template lets a dispatch over
# maxComputeWorkGroupCount be split: its workgroup ids are gl_WorkGroupID + WORKGROUP_BASE_*
# (the WORKGROUP_ID / GLOBAL_ID macros of templates/include/common.glsl.j2).
WORKGROUP_BASE = ("WORKGROUP_BASE_X", "WORKGROUP_BASE_Y", "WORKGROUP_BASE_Z")


@dataclass(eq=False)
class Pipeline:
    """A ready-to-dispatch compute pipeline for one variant + specialization.

    ``bindings`` maps binding number -> its reflected :class:`Binding`;
    ``local_size`` is the effective workgroup size after specialization.
    """

    name: str
    variant: VariantEntry
    spec: dict[str, int | float | bool]
    local_size: tuple[int, int, int]
    bindings: dict[int, Binding]
    push_layout: PushConstants | None
    push_size: int
    handle: Any = field(repr=False)
    layout: Any = field(repr=False)
    set_layout: Any = field(repr=False)
    ctx: Context = field(repr=False)
    # the spec values as asked for (names or ids), to specialize the same pipeline again
    given_spec: dict[Any, Any] = field(default_factory=dict, repr=False)


@dataclass
class _Layouts:
    set_layout: Any
    pipeline_layout: Any
    bindings: dict[int, Binding]
    push_size: int


def _binding_table(name: str, bindings: Iterable[Binding]) -> dict[int, Binding]:
    table: dict[int, Binding] = {}
    for b in bindings:
        if b.set != 0:
            raise ValueError(f"{name}: {b.label()} is in descriptor set {b.set}; only set 0 is supported")
        if b.binding in table:
            raise ValueError(f"{name}: binding {b.binding} is declared twice")
        table[b.binding] = b
    return table


class PipelineFactory:
    """Creates and caches shader modules, layouts and pipelines for one device."""

    def __init__(self, ctx: Context, features: Mapping[str, bool]) -> None:
        self._ctx = ctx
        self._features = features
        self._modules: dict[tuple[str, str], Any] = {}
        self._layouts: dict[str, _Layouts] = {}
        self._pipelines: dict[tuple[Any, ...], Pipeline] = {}
        v = vk()
        info = v.VkPipelineCacheCreateInfo()
        self._cache = check("vkCreatePipelineCache", v.vkCreatePipelineCache, ctx.device, info, None)
        device, cache = ctx.device, self._cache
        ctx.track(lambda: v.vkDestroyPipelineCache(device, cache, None))

    def get(self, variant: VariantEntry, spec: Mapping[Any, Any] | None) -> Pipeline:
        """The cached pipeline for ``variant`` specialized with ``spec``, created on first use.

        Safe from any thread: the caches and the creation run under the device lock.
        """
        if not isinstance(variant, VariantEntry):
            raise TypeError(f"expected a VariantEntry (runtime.load_manifest().variant(name)), got {variant!r}")
        if spec is not None and not isinstance(spec, Mapping):
            raise TypeError(f"{variant.name}: spec must be a mapping of constant name (or id) -> value, got {spec!r}")
        name = variant.name
        for feature in variant.features:
            if not self._features.get(feature, False):
                raise MissingFeatureError(feature, name)
        # numpy scalars -> Python values so that equal specs share one cache key.
        spec = {k: (v.item() if hasattr(v, "item") else v) for k, v in (spec or {}).items()}
        try:
            key = (name, variant.sha256, tuple(sorted(spec.items(), key=lambda kv: (str(type(kv[0])), kv[0]))))
            hash(key)
        except TypeError as exc:
            raise TypeError(f"{name}: spec constant names and values must be hashable scalars, got {spec!r}") from exc
        with self._ctx.lock:
            self._ctx.check_usable()
            cached = self._pipelines.get(key)
            if cached is not None:
                return cached
            pipeline = self._create(name, variant, spec)
            self._pipelines[key] = pipeline
            return pipeline

    def rebased(self, pipeline: Pipeline, base: tuple[int, int, int]) -> Pipeline:
        """``pipeline`` with its workgroup-base spec constants (see :data:`WORKGROUP_BASE`) set to
        ``base``: the piece of a split dispatch whose first workgroup is ``base``."""
        spec = dict(pipeline.given_spec)
        for axis, name in enumerate(WORKGROUP_BASE):
            const = pipeline.variant.spec_constant(name)
            if const is not None:
                spec.pop(const.id, None)  # given by id: replaced by name
                spec[name] = base[axis]
            elif base[axis]:
                raise ValueError(f"{pipeline.name}: cannot offset axis {_AXES[axis]} (no {name} spec constant)")
        return self.get(pipeline.variant, spec)

    # -- pieces -------------------------------------------------------------
    def _module(self, name: str, variant: VariantEntry) -> Any:
        path = str(variant.spv_path)
        key = (path, variant.sha256.lower())
        if key in self._modules:
            return self._modules[key]
        try:
            code = Path(path).read_bytes()
        except OSError as exc:
            raise ShaderkitError(f"{name}: cannot read SPIR-V file {path}: {exc}") from exc
        digest = hashlib.sha256(code).hexdigest()
        if digest != key[1]:
            raise ShaderkitError(
                f"{name}: SPIR-V file {path} has sha256 {digest}, but the manifest says {key[1]} "
                "(stale build? regenerate the manifest)"
            )
        if len(code) % 4 or len(code) < 20 or code[:4] != b"\x03\x02\x23\x07":
            raise ShaderkitError(f"{name}: {path} is not a SPIR-V binary")
        v = vk()
        info = v.VkShaderModuleCreateInfo(codeSize=len(code), pCode=code)
        module = check("vkCreateShaderModule", v.vkCreateShaderModule, self._ctx.device, info, None)
        device = self._ctx.device
        self._ctx.track(lambda: v.vkDestroyShaderModule(device, module, None))
        self._modules[key] = module
        return module

    def _layout(self, name: str, variant: VariantEntry) -> _Layouts:
        key = f"{name}:{variant.sha256}"
        if key in self._layouts:
            return self._layouts[key]
        v = vk()
        ctx = self._ctx
        bindings = _binding_table(name, variant.bindings)
        push_size = push_constant_size(variant.push_constants)
        if push_size > ctx.limits["maxPushConstantsSize"]:
            raise LimitExceededError("maxPushConstantsSize", push_size, ctx.limits["maxPushConstantsSize"], name)
        dtypes = {
            "storage_buffer": v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            "uniform_buffer": v.VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER,
        }
        layout_bindings = [
            v.VkDescriptorSetLayoutBinding(
                binding=n,
                descriptorType=dtypes[b.kind],
                descriptorCount=1,
                stageFlags=v.VK_SHADER_STAGE_COMPUTE_BIT,
            )
            for n, b in sorted(bindings.items())
        ]
        set_info = v.VkDescriptorSetLayoutCreateInfo(
            bindingCount=len(layout_bindings), pBindings=layout_bindings or None
        )
        device = ctx.device
        set_layout = check("vkCreateDescriptorSetLayout", v.vkCreateDescriptorSetLayout, device, set_info, None)
        ctx.track(lambda: v.vkDestroyDescriptorSetLayout(device, set_layout, None))
        push_range = v.VkPushConstantRange(stageFlags=v.VK_SHADER_STAGE_COMPUTE_BIT, offset=0, size=push_size)
        set_layouts = [set_layout]
        push_ranges = [push_range] if push_size else None
        layout_info = v.VkPipelineLayoutCreateInfo(
            setLayoutCount=1,
            pSetLayouts=set_layouts,
            pushConstantRangeCount=1 if push_size else 0,
            pPushConstantRanges=push_ranges,
        )
        pipeline_layout = check("vkCreatePipelineLayout", v.vkCreatePipelineLayout, device, layout_info, None)
        ctx.track(lambda: v.vkDestroyPipelineLayout(device, pipeline_layout, None))
        layouts = _Layouts(set_layout, pipeline_layout, bindings, push_size)
        self._layouts[key] = layouts
        return layouts

    def _specialize(
        self, name: str, variant: VariantEntry, spec: Mapping[Any, Any]
    ) -> tuple[list[tuple[int, bytes]], tuple[int, int, int], dict[str, Any]]:
        """Resolve spec values (by constant name, or by id where the module carries no names) to
        (constant id, bytes), plus the effective local size."""
        local = [int(x or 0) for x in variant.local_size]
        spec_ids = list(variant.local_size_spec_ids)
        axis_names = {f"local_size_{_AXES[a]}": a for a in range(3) if spec_ids[a] is not None}
        entries: dict[int, bytes] = {}
        given_by_id: dict[int, Any] = {}
        axis_ids = {int(i) for i in spec_ids if i is not None}
        for key, value in spec.items():
            if (isinstance(key, str) and key in axis_names) or (type(key) is int and key in axis_ids):
                continue  # a local-size axis (by name or spec id): resolved below
            const = variant.spec_constant(key)
            if const is None:
                known = sorted({c.name for c in variant.spec_constants if c.name} | set(axis_names))
                ids = sorted(c.id for c in variant.spec_constants)
                raise ValueError(
                    f"{name}: unknown specialization constant {key!r}; known names: {known}, ids: {ids}"
                )
            if const.id in given_by_id:
                raise ValueError(f"{name}: specialization constant {const.id} ({const.name!r}) is given twice")
            given_by_id[const.id] = value
            entries[const.id] = pack_value(const.type, value, f"{name}: spec constant {key!r}")
        for axis, spec_id in enumerate(spec_ids):
            if spec_id is None:
                continue
            axis_key = f"local_size_{_AXES[axis]}"
            const = variant.spec_constant(int(spec_id))
            if axis_key in spec:
                local[axis] = _as_size(spec[axis_key], f"{name}: {axis_key}")
            elif int(spec_id) in spec:
                local[axis] = _as_size(spec[int(spec_id)], f"{name}: {axis_key} (spec constant {spec_id})")
            elif int(spec_id) in given_by_id:
                local[axis] = _as_size(given_by_id[int(spec_id)], f"{name}: {axis_key}")
            elif local[axis] <= 0:
                # The codegen stores 0 for spec-constant axes; the shader's default applies.
                local[axis] = int((const.default if const else 0) or 1)
            entries[int(spec_id)] = pack_value("uint", local[axis], f"{name}: {axis_key}")
        size = (local[0], local[1], local[2])
        limits = self._ctx.limits
        for axis in range(3):
            if size[axis] < 1:
                raise ValueError(f"{name}: local_size_{_AXES[axis]} must be >= 1, got {size[axis]}")
        over = workgroup_over_limits(size, limits)
        if over is not None:
            raise LimitExceededError(*over[:3], name)
        effective = {c.name or str(c.id): given_by_id.get(c.id, c.default) for c in variant.spec_constants}
        return sorted(entries.items()), size, effective

    def _create(self, name: str, variant: VariantEntry, spec: Mapping[Any, Any]) -> Pipeline:
        v = vk()
        ctx = self._ctx
        # Check everything that can fail on bad input before creating objects.
        layouts = self._layout(name, variant)
        entries, local_size, effective = self._specialize(name, variant, spec)
        module = self._module(name, variant)

        blob = bytearray()
        map_entries = []
        for spec_id, raw in entries:
            map_entries.append(v.VkSpecializationMapEntry(constantID=spec_id, offset=len(blob), size=len(raw)))
            blob += raw
        data = v.ffi.new("char[]", bytes(blob)) if blob else None
        spec_info = None
        if map_entries:
            spec_info = v.VkSpecializationInfo(
                mapEntryCount=len(map_entries), pMapEntries=map_entries, dataSize=len(blob), pData=data
            )
        entry_point = variant.entry_point or "main"
        stage = v.VkPipelineShaderStageCreateInfo(
            stage=v.VK_SHADER_STAGE_COMPUTE_BIT, module=module, pName=entry_point, pSpecializationInfo=spec_info
        )
        create_info = v.VkComputePipelineCreateInfo(stage=stage, layout=layouts.pipeline_layout)
        handles = check(
            f"vkCreateComputePipelines({name})",
            v.vkCreateComputePipelines,
            ctx.device,
            self._cache,
            1,
            create_info,
            None,
        )
        handle = handles[0]
        # Explicitly held until here: cffi frees what they point to once they die.
        del stage, spec_info, map_entries, data, create_info
        device = ctx.device
        ctx.track(lambda: v.vkDestroyPipeline(device, handle, None))
        return Pipeline(
            name=name,
            variant=variant,
            spec=effective,
            local_size=local_size,
            bindings=layouts.bindings,
            push_layout=variant.push_constants,
            push_size=layouts.push_size,
            handle=handle,
            layout=layouts.pipeline_layout,
            set_layout=layouts.set_layout,
            ctx=ctx,
            given_spec=dict(spec),
        )

    @property
    def cached(self) -> int:
        """Number of distinct pipelines created so far."""
        return len(self._pipelines)


def _as_size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer workgroup size, got {value!r}")
    return int(value)
