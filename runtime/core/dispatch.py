"""Recording and submitting a sequence of dispatches (:class:`Step`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .buffers import Buffer, check_size
from .context import UINT64_MAX, Context
from .errors import LimitExceededError, ShaderkitError
from .glsl_types import element_dtype, pack_push_constants
from .manifest import Binding
from .pipelines import Pipeline
from .vkapi import check, vk


@dataclass
class Step:
    """One dispatch: a pipeline, its buffers by binding (reflected name or number), push values by
    member name, and the workgroup count."""

    pipeline: Pipeline
    buffers: Mapping[Any, Buffer | np.ndarray]
    push: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[int, int, int] | Sequence[int] = (1, 1, 1)


@dataclass
class _Prepared:
    pipeline: Pipeline
    groups: tuple[int, int, int]
    push: bytes
    # (binding number, descriptor kind "storage"/"uniform", buffer)
    bindings: list[tuple[int, str, Buffer]]


def check_array(variant: str, binding: Binding, array: np.ndarray) -> None:
    """Raise ValueError naming the binding if ``array`` cannot back it.

    The array's item size must be the size of the element's scalar (int, ivec4 -> 4 bytes,
    float16_t -> 2) or of the whole element, and it must hold whole elements; its kind is free
    (an int32 array may carry packed int8 bytes, a uint32 one an `int` buffer).
    """
    label = f"{variant}: {binding.label()}"
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{label}: expected a numpy array or Buffer, got {type(array).__name__}")
    if array.nbytes == 0:
        raise ValueError(f"{label}: empty array")
    if binding.kind == "uniform_buffer" or binding.element == "block":
        if array.nbytes < binding.block_size:
            raise ValueError(f"{label}: the block needs {binding.block_size} bytes, the array has {array.nbytes}")
        return
    parsed = element_dtype(binding.element)
    stride = binding.element_size
    if parsed is not None:
        scalar, components = parsed
        allowed = {scalar.itemsize, stride} - {0}
        if array.dtype.itemsize not in allowed:
            raise ValueError(
                f"{label}: element type {binding.element} needs {scalar.itemsize}-byte items (e.g. numpy {scalar}), "
                f"got {array.dtype} ({array.dtype.itemsize}-byte items)"
            )
        stride = stride or scalar.itemsize * components
    if stride and array.nbytes < stride:
        raise ValueError(f"{label}: one {binding.element} element is {stride} bytes, the array has {array.nbytes}")
    if stride and array.nbytes % stride:
        raise ValueError(
            f"{label}: {array.nbytes} bytes is not a whole number of {stride}-byte {binding.element} elements"
        )


class Runner:
    """Owns the command buffer, fence and descriptor/query pools used by :meth:`run`."""

    def __init__(self, ctx: Context) -> None:
        v = vk()
        self._ctx = ctx
        device = ctx.device
        pool_info = v.VkCommandPoolCreateInfo(
            flags=v.VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, queueFamilyIndex=ctx.queue_family
        )
        self._command_pool = check("vkCreateCommandPool", v.vkCreateCommandPool, device, pool_info, None)
        command_pool = self._command_pool
        ctx.track(lambda: v.vkDestroyCommandPool(device, command_pool, None))
        alloc = v.VkCommandBufferAllocateInfo(
            commandPool=command_pool, level=v.VK_COMMAND_BUFFER_LEVEL_PRIMARY, commandBufferCount=1
        )
        self._cmd = v.vkAllocateCommandBuffers(device, alloc)[0]
        fence = check("vkCreateFence", v.vkCreateFence, device, v.VkFenceCreateInfo(), None)
        self._fence = fence
        ctx.track(lambda: v.vkDestroyFence(device, fence, None))
        self._desc_pool: Any = None
        self._desc_capacity: tuple[int, ...] = (0, 0, 0)  # sets, storage descriptors, uniform descriptors
        self._desc_key: int | None = None
        self._query_pool: Any = None
        self._query_capacity = 0
        self._query_key: int | None = None
        # Built once: these never change between runs.
        self._begin_info = v.VkCommandBufferBeginInfo(flags=v.VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT)
        self._barrier = v.VkMemoryBarrier(
            srcAccessMask=v.VK_ACCESS_SHADER_WRITE_BIT,
            dstAccessMask=v.VK_ACCESS_SHADER_READ_BIT | v.VK_ACCESS_SHADER_WRITE_BIT,
        )
        self._host_barrier = v.VkMemoryBarrier(
            srcAccessMask=v.VK_ACCESS_SHADER_WRITE_BIT, dstAccessMask=v.VK_ACCESS_HOST_READ_BIT
        )
        self._cmds = [self._cmd]
        self._submit = v.VkSubmitInfo(commandBufferCount=1, pCommandBuffers=self._cmds)
        self._fences = [fence]

    # -- pools ------------------------------------------------------------------
    def _descriptor_sets(self, prepared: list[_Prepared]) -> Any:
        v = vk()
        ctx = self._ctx
        need = (
            len(prepared),
            sum(1 for p in prepared for _, k, _ in p.bindings if k == "storage"),
            sum(1 for p in prepared for _, k, _ in p.bindings if k == "uniform"),
        )
        if any(n > c for n, c in zip(need, self._desc_capacity, strict=True)):
            capacity = tuple(max(64, 2 * n, c) for n, c in zip(need, self._desc_capacity, strict=True))
            self._drop_descriptor_pool()
            sizes = [
                v.VkDescriptorPoolSize(type=v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount=capacity[1]),
                v.VkDescriptorPoolSize(type=v.VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, descriptorCount=capacity[2]),
            ]
            info = v.VkDescriptorPoolCreateInfo(maxSets=capacity[0], poolSizeCount=len(sizes), pPoolSizes=sizes)
            pool = check("vkCreateDescriptorPool", v.vkCreateDescriptorPool, ctx.device, info, None)
            device = ctx.device
            self._desc_pool, self._desc_capacity = pool, capacity
            self._desc_key = ctx.track(lambda: v.vkDestroyDescriptorPool(device, pool, None))
        layouts = [p.pipeline.set_layout for p in prepared]
        alloc = v.VkDescriptorSetAllocateInfo(
            descriptorPool=self._desc_pool, descriptorSetCount=len(layouts), pSetLayouts=layouts
        )
        sets = check("vkAllocateDescriptorSets", v.vkAllocateDescriptorSets, ctx.device, alloc)
        dtypes = {"storage": v.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, "uniform": v.VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER}
        infos = []
        writes = []
        max_storage = ctx.limits["maxStorageBufferRange"]
        for i, p in enumerate(prepared):
            for number, kind, buf in p.bindings:
                handle, offset, size = buf.descriptor_range(kind)
                if kind == "storage":
                    size = min(size, max_storage)
                info = v.VkDescriptorBufferInfo(buffer=handle, offset=offset, range=size)
                infos.append(info)
                writes.append(
                    v.VkWriteDescriptorSet(
                        dstSet=sets[i],
                        dstBinding=number,
                        descriptorCount=1,
                        descriptorType=dtypes[kind],
                        pBufferInfo=info,
                    )
                )
        if writes:
            v.vkUpdateDescriptorSets(ctx.device, len(writes), writes, 0, None)
        del infos, writes
        return sets

    def _drop_descriptor_pool(self) -> None:
        if self._desc_pool is not None and self._desc_key is not None:
            vk().vkDestroyDescriptorPool(self._ctx.device, self._desc_pool, None)
            self._ctx.untrack(self._desc_key)
        self._desc_pool, self._desc_key = None, None

    def _queries(self, count: int) -> Any:
        v = vk()
        ctx = self._ctx
        if ctx.timestamp_bits == 0 or ctx.limits["timestampPeriod"] <= 0:
            raise ShaderkitError(
                f"queue family {ctx.queue_family} of {ctx.info.name!r} does not support timestamps "
                "(timestampValidBits = 0); run without timestamps=True"
            )
        if count > self._query_capacity:
            if self._query_pool is not None and self._query_key is not None:
                v.vkDestroyQueryPool(ctx.device, self._query_pool, None)
                ctx.untrack(self._query_key)
            capacity = max(64, 2 * count)
            info = v.VkQueryPoolCreateInfo(queryType=v.VK_QUERY_TYPE_TIMESTAMP, queryCount=capacity)
            pool = check("vkCreateQueryPool", v.vkCreateQueryPool, ctx.device, info, None)
            device = ctx.device
            self._query_pool, self._query_capacity = pool, capacity
            self._query_key = ctx.track(lambda: v.vkDestroyQueryPool(device, pool, None))
        return self._query_pool

    # -- validation -------------------------------------------------------------
    def _prepare(self, index: int, step: Step, temps: list[Buffer]) -> _Prepared:
        ctx = self._ctx
        p = step.pipeline
        if not isinstance(p, Pipeline) or p.ctx is not ctx:
            raise ValueError(f"step {index}: pipeline does not belong to this device")
        given = [int(g) for g in step.groups]
        if len(given) > 3:
            raise ValueError(f"step {index} ({p.name}): groups must have at most 3 entries, got {given}")
        groups = [*given, 1, 1, 1][:3]
        max_groups = ctx.limits["maxComputeWorkGroupCount"]
        for axis, count in enumerate(groups):
            if count < 0:
                raise ValueError(f"step {index} ({p.name}): negative group count {groups}")
            if count > max_groups[axis]:
                raise LimitExceededError(
                    f"maxComputeWorkGroupCount[{axis}]", count, max_groups[axis], f"step {index} ({p.name}) groups"
                )
        push = b""
        if p.push_size:
            push = pack_push_constants(p.push_layout, step.push, p.push_size, p.name)
        elif step.push:
            raise ValueError(f"{p.name}: has no push constants, got {sorted(step.push)}")
        given_buffers: dict[int, Buffer | np.ndarray] = {}
        for key, value in step.buffers.items():
            binding = p.variant.binding(key)
            if binding.binding in given_buffers:
                raise ValueError(f"{p.name}: step {index} gives {binding.label()} twice")
            given_buffers[binding.binding] = value
        bound = []
        for number, binding in sorted(p.bindings.items()):
            kind = binding.descriptor
            label = f"{p.name}: {binding.label()}"
            if number not in given_buffers:
                raise ValueError(f"{label}: no buffer given in step {index}")
            value = given_buffers[number]
            if isinstance(value, np.ndarray):
                check_array(p.name, binding, value)
                buf = Buffer(ctx, value.nbytes, kind=kind)
                temps.append(buf)
                buf.write(value)
            elif isinstance(value, Buffer):
                if value.freed or value._ctx is not ctx:
                    raise ValueError(f"{label}: buffer is freed or belongs to another device")
                if kind == "uniform":
                    check_size(ctx, value.nbytes, "uniform")
                if binding.block_size and value.nbytes < binding.block_size:
                    raise ValueError(f"{label}: the block needs {binding.block_size} bytes, buffer has {value.nbytes}")
                buf = value
            else:
                raise ValueError(f"{label}: expected a Buffer or numpy array, got {type(value).__name__}")
            bound.append((number, kind, buf))
        return _Prepared(p, (groups[0], groups[1], groups[2]), push, bound)

    # -- the run ----------------------------------------------------------------
    def run(self, steps: Sequence[Step], timestamps: bool = False) -> list[float] | None:
        if not steps:
            return [] if timestamps else None
        temps: list[Buffer] = []
        try:
            prepared = [self._prepare(i, s, temps) for i, s in enumerate(steps)]
            query_pool = self._queries(2 * len(prepared)) if timestamps else None
            sets = self._descriptor_sets(prepared)
            try:
                self._record(prepared, sets, query_pool)
                self._submit_and_wait()
                if query_pool is not None:
                    return self._read_timestamps(query_pool, len(prepared))
                return None
            finally:
                # Resetting returns every set at once; no per-run leak of sets.
                vk().vkResetDescriptorPool(self._ctx.device, self._desc_pool, 0)
        finally:
            for buf in temps:
                buf.free()

    def _record(self, prepared: list[_Prepared], sets: Any, query_pool: Any) -> None:
        v = vk()
        cmd = self._cmd
        compute = v.VK_PIPELINE_BIND_POINT_COMPUTE
        stage = v.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT
        v.vkResetCommandBuffer(cmd, 0)
        v.vkBeginCommandBuffer(cmd, self._begin_info)
        if query_pool is not None:
            v.vkCmdResetQueryPool(cmd, query_pool, 0, 2 * len(prepared))
        for i, p in enumerate(prepared):
            if i:
                v.vkCmdPipelineBarrier(cmd, stage, stage, 0, 1, self._barrier, 0, None, 0, None)
            v.vkCmdBindPipeline(cmd, compute, p.pipeline.handle)
            v.vkCmdBindDescriptorSets(cmd, compute, p.pipeline.layout, 0, 1, [sets[i]], 0, None)
            if p.push:
                data = v.ffi.from_buffer(p.push)
                v.vkCmdPushConstants(cmd, p.pipeline.layout, v.VK_SHADER_STAGE_COMPUTE_BIT, 0, len(p.push), data)
            if query_pool is not None:
                v.vkCmdWriteTimestamp(cmd, v.VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, query_pool, 2 * i)
            v.vkCmdDispatch(cmd, *p.groups)
            if query_pool is not None:
                v.vkCmdWriteTimestamp(cmd, v.VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, query_pool, 2 * i + 1)
        v.vkCmdPipelineBarrier(cmd, stage, v.VK_PIPELINE_STAGE_HOST_BIT, 0, 1, self._host_barrier, 0, None, 0, None)
        check("vkEndCommandBuffer", v.vkEndCommandBuffer, cmd)

    def _submit_and_wait(self) -> None:
        v = vk()
        ctx = self._ctx
        check("vkQueueSubmit", v.vkQueueSubmit, ctx.queue, 1, self._submit, self._fence)
        try:
            check("vkWaitForFences", v.vkWaitForFences, ctx.device, 1, self._fences, v.VK_TRUE, UINT64_MAX)
        finally:
            v.vkResetFences(ctx.device, 1, self._fences)

    def _read_timestamps(self, query_pool: Any, count: int) -> list[float]:
        v = vk()
        ctx = self._ctx
        raw = v.ffi.new("uint64_t[]", 2 * count)
        flags = v.VK_QUERY_RESULT_64_BIT | v.VK_QUERY_RESULT_WAIT_BIT
        check(
            "vkGetQueryPoolResults",
            v.vkGetQueryPoolResults,
            ctx.device,
            query_pool,
            0,
            2 * count,
            v.ffi.sizeof(raw),
            raw,
            8,
            flags,
        )
        mask = (1 << ctx.timestamp_bits) - 1 if ctx.timestamp_bits < 64 else UINT64_MAX
        period_s = ctx.limits["timestampPeriod"] * 1e-9
        # Masked subtraction handles a counter that wrapped within the step.
        return [((raw[2 * i + 1] - raw[2 * i]) & mask) * period_s for i in range(count)]
