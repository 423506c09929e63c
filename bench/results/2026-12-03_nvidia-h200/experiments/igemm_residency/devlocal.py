"""Does the igemm run faster with its buffers in device-local memory that the host cannot map?

The runtime allocates every buffer host-visible (on this GPU: DEVICE_LOCAL | HOST_VISIBLE |
HOST_COHERENT, the resizable BAR). This script times the shipped tensor-core igemm blocks on
ResNet-50's 3x3 layers twice in one process: with the runtime's buffers, and with every buffer the
dispatch binds cloned into DEVICE_LOCAL-only memory (filled, and the output read back, with the
bench_copy kernel). Kernel time, best of 2 x 20 back-to-back calls; outputs checked both ways.

    PYTHONPATH=. python $E/devlocal.py [LAYER,...]
"""
from __future__ import annotations

import sys
import weakref
from contextlib import ExitStack
from typing import Any

import numpy as np

from bench.clocks import CudaContextHold
from runtime.core.buffers import Buffer
from runtime.core.context import Context
from runtime.core.device import open_device
from runtime.core.dispatch import Step
from runtime.core.manifest import load_manifest
from runtime.core.vkapi import check, vk
from runtime.families.q8ta_igemm.op import igemm_entry
from runtime.families.q8ta_igemm.timing import RESNET50_3X3, _Rig, kernel_seconds, warm_up


def _free(ctx: Context, key: int, buffer: Any, memory: Any) -> None:
    with ctx.lock:
        if ctx.device is not None:
            ctx.settle()
            v = vk()
            v.vkDestroyBuffer(ctx.device, buffer, None)
            v.vkFreeMemory(ctx.device, memory, None)
        ctx.untrack(key)


class DeviceOnly(Buffer):
    """A buffer in DEVICE_LOCAL-only memory: bindable, not mappable (read/write are not available)."""

    def _create(self, ctx: Context, total: int) -> None:
        v = vk()
        usage = (v.VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | v.VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT
                 | v.VK_BUFFER_USAGE_TRANSFER_SRC_BIT | v.VK_BUFFER_USAGE_TRANSFER_DST_BIT)
        info = v.VkBufferCreateInfo(size=total, usage=usage, sharingMode=v.VK_SHARING_MODE_EXCLUSIVE)
        self.handle = check("vkCreateBuffer", v.vkCreateBuffer, ctx.device, info, None)
        reqs = v.vkGetBufferMemoryRequirements(ctx.device, self.handle)
        props = ctx.memory_properties
        index = next(i for i in range(props.memoryTypeCount) if (reqs.memoryTypeBits >> i) & 1
                     and props.memoryTypes[i].propertyFlags == v.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)
        alloc = v.VkMemoryAllocateInfo(allocationSize=reqs.size, memoryTypeIndex=index)
        self._memory = v.vkAllocateMemory(ctx.device, alloc, None)
        v.vkBindBufferMemory(ctx.device, self.handle, self._memory, 0)
        key = ctx.new_key()
        self._finalizer = weakref.finalize(self, _free, ctx, key, self.handle, self._memory)
        ctx.track(self._finalizer, key)
        self._bytes = np.zeros(1, np.uint8)  # stands in for the mapping that _alive() checks


def copy_step(dev, m, dst: Buffer, src: Buffer, nbytes: int) -> Step:
    e = m.variant("bench_copy_wg256")
    n = nbytes // 16
    return Step(dev.pipeline(e), {"t_dst": dst, "t_src": src}, {"n": n}, (max(1, min(4096, -(-n // 256))), 1, 1))


def main() -> None:
    names = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else None
    m = load_manifest()
    with open_device(None) as dev:
        hold = CudaContextHold(dev)
        print(dev.info.name, "| memory types:", [(i, int(dev._live().memory_properties.memoryTypes[i].propertyFlags))
              for i in range(dev._live().memory_properties.memoryTypeCount)], "| CUDA context:", hold.note, flush=True)
        layers = [s for s in RESNET50_3X3 if not names or any(n in s.name for n in names)]
        warm_up(dev, layers[0], 8)
        variants = [e for e in m.entries(role="igemm") if "coopmat_4w4c" in e.name and "emulated" not in e.name
                    and "bm128" not in e.name]
        for layer in layers:
            with ExitStack() as stack:
                rig = _Rig(dev, m, layer, stack)
                pick = igemm_entry(m, dev, "4w4c", rig.geom, "float32", None).name
                for e in variants:
                    step, splits = rig.igemm(e)
                    rig.out.fill(0x7B)
                    dev.run([step])
                    bad = rig.check() or "ok"
                    t_host = min(kernel_seconds(dev, [step], 20) for _ in range(2))
                    clones, fills = {}, []
                    for key, buf in step.buffers.items():
                        assert isinstance(buf, Buffer)  # rig.igemm() made every binding resident
                        size = -(-buf.nbytes // 16) * 16
                        staged = stack.enter_context(dev.alloc(size, fill=0))
                        staged.write(buf.read())
                        clone = stack.enter_context(DeviceOnly(dev._live(), size))
                        clones[key] = clone
                        fills.append(copy_step(dev, m, clone, staged, size))
                    dev.run(fills)
                    fast = Step(step.pipeline, clones, step.push, step.groups)
                    out_key = next(k for k, b in step.buffers.items() if b is rig.out)
                    dev.run([fast, copy_step(dev, m, rig.out, clones[out_key], rig.out.nbytes)])
                    bad_local = rig.check() or "ok"
                    t_local = min(kernel_seconds(dev, [fast], 20) for _ in range(2))
                    print(f"{layer.name:20s} S={splits:2d} host-visible {t_host * 1e6:7.2f} us  device-only "
                          f"{t_local * 1e6:7.2f} us  ratio {t_host / t_local:5.2f}x  [{bad} / {bad_local}] "
                          f"{e.name}{' (pick)' if e.name == pick else ''}", flush=True)
        hold.close()


if __name__ == "__main__":
    main()
