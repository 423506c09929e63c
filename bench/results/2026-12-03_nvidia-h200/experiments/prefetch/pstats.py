"""Experiment: per-variant pipeline statistics (registers, spills...) through VK_KHR_pipeline_executable_properties.

python3 .gpu/pstats.py SUBSTRING...   (SHADERKIT_BUILD picks the build)
"""
import sys

import runtime.core.context as C
from runtime.core.vkapi import vk

EXT = "VK_KHR_pipeline_executable_properties"
v = vk()
_orig_chain = C.build_enable_chain


def chain(api, extensions, wanted):
    en = _orig_chain(api, extensions, wanted)
    if EXT in extensions:
        f = v.VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR(pNext=en.features2.pNext, pipelineExecutableInfo=v.VK_TRUE)
        en.keepalive.append(f)
        en.features2.pNext = v.ffi.cast("void *", v.ffi.addressof(f))
        en.extensions.append(EXT)
    else:
        print("no", EXT)
    return en


C.build_enable_chain = chain
_orig_ci = v.VkComputePipelineCreateInfo


def ci(**kw):
    kw["flags"] = kw.get("flags", 0) | v.VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR
    return _orig_ci(**kw)


v.VkComputePipelineCreateInfo = ci

from runtime.core.device import Device  # noqa: E402
from runtime.core.manifest import load_manifest  # noqa: E402


def value(s):
    f = int(s.format)
    if f == 0:
        return bool(s.value.b32)
    if f == 1:
        return int(s.value.i64)
    if f == 2:
        return int(s.value.u64)
    return float(s.value.f64)


def main(subs):
    dev = Device()
    ctx = dev._live()
    if EXT not in ctx.enabled_extensions:
        print("device lacks", EXT)
        return
    props_fn = v.vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutablePropertiesKHR")
    stats_fn = v.vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutableStatisticsKHR")
    man = load_manifest()
    for name in sorted(man.variants):
        if subs and not any(s in name for s in subs):
            continue
        var = man.variants[name]
        try:
            pipe = dev.pipeline(var)
        except Exception as exc:  # noqa: BLE001
            print(name, "skip:", str(exc).splitlines()[0][:100])
            continue
        info = v.VkPipelineInfoKHR(pipeline=pipe.handle)
        try:
            execs = list(props_fn(ctx.device, info))
        except Exception as exc:  # noqa: BLE001
            print(name, "properties failed:", exc)
            continue
        out = []
        for i, _ in enumerate(execs):
            einfo = v.VkPipelineExecutableInfoKHR(pipeline=pipe.handle, executableIndex=i)
            for s in stats_fn(ctx.device, einfo):
                nm = s.name if isinstance(s.name, str) else v.ffi.string(s.name).decode()
                try:
                    val = value(s)
                except Exception as exc:  # noqa: BLE001
                    val = f"?{exc}"
                out.append(f"{nm.replace(' ', '_')}={val}")
        print(name, " ".join(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
