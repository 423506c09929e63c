"""Recording and submitting a sequence of dispatches (:class:`Step`).

A step whose workgroup count goes over ``maxComputeWorkGroupCount`` on some axis is recorded as
several dispatches (no barrier between them: they are one dispatch cut in pieces), provided its
shader declares the ``WORKGROUP_BASE_*`` spec constants of that axis (see
:data:`runtime.core.pipelines.WORKGROUP_BASE`): each piece is the pipeline specialized to the
piece's first workgroup, so ``WORKGROUP_ID`` / ``GLOBAL_ID`` stay global while
``gl_NumWorkGroups`` is the piece's count.  (``vkCmdDispatchBase`` cannot do this: Vulkan
requires base + count <= maxComputeWorkGroupCount, VUID-vkCmdDispatchBase-groupCountX-00424.)
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .buffers import Buffer, check_size
from .context import UINT64_MAX, Context
from .errors import LimitExceededError, ShaderkitError
from .glsl_types import element_dtype, pack_push_constants
from .manifest import Binding
from .pipelines import WORKGROUP_BASE, Pipeline, PipelineFactory
from .vkapi import check, vk

UINT32_MAX = 0xFFFFFFFF
# pieces one split dispatch may be cut into (each is a pipeline compiled once and cached); far
# more than any dispatch over buffers within maxStorageBufferRange needs
MAX_PIECES = 1024


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
    # what is recorded: (pipeline, group counts) per piece; one piece unless the step was split
    pieces: list[tuple[Pipeline, tuple[int, int, int]]] = field(default_factory=list)


def _pieces(count: int, limit: int) -> list[tuple[int, int]]:
    """(first workgroup, workgroups) of the pieces of one axis."""
    if count <= limit:
        return [(0, count)]
    return [(base, min(limit, count - base)) for base in range(0, count, limit)]


def split_groups(
    variant_name: str, groups: Sequence[int], local_size: Sequence[int], limits: Sequence[int],
    splittable: Sequence[bool], what: str = "",
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The pieces (base, counts) a dispatch of ``groups`` workgroups is recorded as.

    LimitExceededError (a ValueError) when it cannot run: an axis over its limit whose shader
    declares no workgroup base, invocation ids past uint32, or more than :data:`MAX_PIECES` pieces.
    ``what`` names the dispatch in the message.
    """
    label = what or variant_name
    for axis in range(3):
        if groups[axis] > limits[axis] and not splittable[axis]:
            raise LimitExceededError(
                f"maxComputeWorkGroupCount[{axis}]", groups[axis], limits[axis],
                f"{label} groups (variant {variant_name!r} declares no {WORKGROUP_BASE[axis]}, so its dispatch "
                "cannot be split)",
            )
        if groups[axis] * local_size[axis] > UINT32_MAX + 1:
            raise LimitExceededError(
                f"invocations along {'xyz'[axis]} (uint32 ids)", groups[axis] * local_size[axis], UINT32_MAX + 1,
                f"{label} groups",
            )
    per_axis = [_pieces(groups[axis], limits[axis]) for axis in range(3)]
    count = len(per_axis[0]) * len(per_axis[1]) * len(per_axis[2])
    if count > MAX_PIECES:
        raise LimitExceededError("pieces of a split dispatch", count, MAX_PIECES, f"{label} groups {tuple(groups)}")
    return [
        ((x[0], y[0], z[0]), (x[1], y[1], z[1])) for x, y, z in itertools.product(*per_axis)
    ]


def group_counts(groups: Any, what: str) -> tuple[int, int, int]:
    """`groups` (1 to 3 non-negative ints) as (x, y, z); ValueError/TypeError naming ``what``."""
    if isinstance(groups, np.ndarray):
        groups = groups.tolist() if groups.ndim == 1 else groups
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not 1 <= len(groups) <= 3:
        raise ValueError(f"{what}: groups must be 1 to 3 ints, got {groups!r}")
    out = []
    for g in groups:
        if isinstance(g, bool) or not isinstance(g, numbers.Integral):
            raise TypeError(f"{what}: groups must hold ints, got {groups!r}")
        if not 0 <= int(g) <= UINT32_MAX:
            raise ValueError(f"{what}: group counts must be in [0, {UINT32_MAX}], got {groups!r}")
        out.append(int(g))
    out += [1] * (3 - len(out))
    return out[0], out[1], out[2]


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
    """Owns the command buffer, fence and descriptor/query pools used by :meth:`run`.

    One per device, used under the device lock (:attr:`Context.lock`): runs from many threads are
    serialized.  Between runs nothing of it is in flight (every run settles before returning, see
    :meth:`Context.settle`), so each run starts by resetting the fence and the descriptor pool.
    """

    def __init__(self, ctx: Context, pipelines: PipelineFactory | None = None) -> None:
        v = vk()
        self._ctx = ctx
        self._pipelines = pipelines  # specializes the pieces of split dispatches
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
        self._submit_info = v.VkSubmitInfo(commandBufferCount=1, pCommandBuffers=self._cmds)
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

    def _reset(self) -> None:
        """Fence unsignaled, every descriptor set returned: valid only with nothing in flight."""
        v = vk()
        device = self._ctx.device
        v.vkResetFences(device, 1, self._fences)
        if self._desc_pool is not None:
            v.vkResetDescriptorPool(device, self._desc_pool, 0)

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
        if not isinstance(step, Step):
            raise TypeError(f"step {index}: expected a Step, got {type(step).__name__}")
        p = step.pipeline
        if not isinstance(p, Pipeline) or p.ctx is not ctx:
            raise ValueError(f"step {index}: pipeline does not belong to this device")
        groups = group_counts(step.groups, f"step {index} ({p.name})")
        pieces = self._split(p, groups, f"step {index} ({p.name})")
        if not isinstance(step.buffers, Mapping):
            raise TypeError(f"step {index} ({p.name}): buffers must be a mapping of binding -> Buffer or array")
        if not isinstance(step.push, Mapping):
            raise TypeError(f"step {index} ({p.name}): push must be a mapping of member name -> value")
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
        return _Prepared(p, groups, push, bound, pieces)

    def _split(
        self, p: Pipeline, groups: tuple[int, int, int], what: str
    ) -> list[tuple[Pipeline, tuple[int, int, int]]]:
        limits = self._ctx.limits["maxComputeWorkGroupCount"]
        if all(g <= m for g, m in zip(groups, limits, strict=True)):
            return [(p, groups)]
        splittable = [self._pipelines is not None and p.variant.spec_constant(name) is not None
                      for name in WORKGROUP_BASE]
        pieces = split_groups(p.name, groups, p.local_size, limits, splittable, what)
        assert self._pipelines is not None
        return [(self._pipelines.rebased(p, base), counts) for base, counts in pieces]

    # -- the run ----------------------------------------------------------------
    def run(self, steps: Sequence[Step], timestamps: bool = False) -> list[float] | None:
        if isinstance(steps, Step) or not isinstance(steps, Sequence):
            raise TypeError(f"steps must be a sequence (list) of Step, got {type(steps).__name__}")
        ctx = self._ctx
        with ctx.lock:
            ctx.check_usable()
            ctx.settle()  # a no-op unless an earlier call was torn down before it could
            ctx.run_deferred()
            if not steps:
                return [] if timestamps else None
            temps: list[Buffer] = []
            try:
                prepared = [self._prepare(i, s, temps) for i, s in enumerate(steps)]
                query_pool = self._queries(2 * len(prepared)) if timestamps else None
                self._reset()
                sets = self._descriptor_sets(prepared)
                self._record(prepared, sets, query_pool)
                self._submit_and_wait()
                if query_pool is not None:
                    return self._read_timestamps(query_pool, len(prepared))
                return None
            finally:
                # Whatever cut the call short (Ctrl-C landing between submit and wait included):
                # wait for the GPU before the temporaries go; the pool and fence are reset by the
                # next run, once nothing is in flight.
                ctx.settle()
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
            if query_pool is not None:
                v.vkCmdWriteTimestamp(cmd, v.VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, query_pool, 2 * i)
            # the pieces of a split step share one layout, set and push values: no barrier between them
            for pipeline, groups in p.pieces or [(p.pipeline, p.groups)]:
                v.vkCmdBindPipeline(cmd, compute, pipeline.handle)
                v.vkCmdBindDescriptorSets(cmd, compute, pipeline.layout, 0, 1, [sets[i]], 0, None)
                if p.push:
                    data = v.ffi.from_buffer(p.push)
                    v.vkCmdPushConstants(cmd, pipeline.layout, v.VK_SHADER_STAGE_COMPUTE_BIT, 0, len(p.push), data)
                v.vkCmdDispatch(cmd, *groups)
            if query_pool is not None:
                v.vkCmdWriteTimestamp(cmd, v.VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, query_pool, 2 * i + 1)
        v.vkCmdPipelineBarrier(cmd, stage, v.VK_PIPELINE_STAGE_HOST_BIT, 0, 1, self._host_barrier, 0, None, 0, None)
        check("vkEndCommandBuffer", v.vkEndCommandBuffer, cmd)

    def _submit_and_wait(self) -> None:
        ctx = self._ctx
        # set before the call: an exception inside it (a KeyboardInterrupt landing after the driver
        # returned) leaves unknown whether the work is queued, and settle() finds out
        ctx.in_flight = True
        self._submit()
        self._wait()
        ctx.in_flight = False

    def _submit(self) -> None:
        v = vk()
        ctx = self._ctx
        check("vkQueueSubmit", v.vkQueueSubmit, ctx.queue, 1, self._submit_info, self._fence)

    def _wait(self) -> None:
        v = vk()
        check("vkWaitForFences", v.vkWaitForFences, self._ctx.device, 1, self._fences, v.VK_TRUE, UINT64_MAX)

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
