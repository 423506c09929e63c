"""Experiment: the driver's pipeline statistics (registers, binary size, shared memory) of built variants.

Reads VK_KHR_pipeline_executable_properties. The runtime does not enable that extension, so this script
patches it in for its own process: an experiment, not a tool. From the repository root, with
D = bench/results/2026-12-03_nvidia-h200/experiments/prefetch,

    PYTHONPATH=. SHADERKIT_BUILD=<build> python3 $D/pstats.py SUBSTRING...

prints one line per variant whose name has one of the substrings.
"""

from __future__ import annotations

import sys
from typing import Any

import runtime.core.context as context
from runtime.core.device import Device
from runtime.core.manifest import load_manifest
from runtime.core.vkapi import vk

EXT = "VK_KHR_pipeline_executable_properties"
v = vk()
_build_enable_chain = context.build_enable_chain
_pipeline_create_info = v.VkComputePipelineCreateInfo


def _chain(api: Any, extensions: frozenset[str], wanted: set[str]) -> Any:
    """The runtime's feature chain with pipelineExecutableInfo enabled where the device has it."""
    enable = _build_enable_chain(api, extensions, wanted)
    if EXT in extensions:
        feature = v.VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR(
            pNext=enable.features2.pNext, pipelineExecutableInfo=v.VK_TRUE
        )
        enable.keepalive.append(feature)
        enable.features2.pNext = v.ffi.cast("void *", v.ffi.addressof(feature))
        enable.extensions.append(EXT)
    return enable


def _create_info(**fields: Any) -> Any:
    """Compute pipelines that capture their statistics."""
    fields["flags"] = fields.get("flags", 0) | v.VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR
    return _pipeline_create_info(**fields)


def _value(stat: Any) -> Any:
    fmt = int(stat.format)
    if fmt == 0:
        return bool(stat.value.b32)
    if fmt == 1:
        return int(stat.value.i64)
    if fmt == 2:
        return int(stat.value.u64)
    return float(stat.value.f64)


def main(substrings: list[str]) -> int:
    context.build_enable_chain = _chain
    v.VkComputePipelineCreateInfo = _create_info
    dev = Device()
    ctx = dev._live()
    if EXT not in ctx.enabled_extensions:
        print(f"{dev.info.name}: no {EXT}")
        return 1
    properties = v.vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutablePropertiesKHR")
    statistics = v.vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutableStatisticsKHR")
    manifest = load_manifest()
    for name in sorted(manifest.variants):
        if substrings and not any(s in name for s in substrings):
            continue
        try:
            pipe = dev.pipeline(manifest.variants[name])
        except Exception as exc:  # a variant the device cannot run: say so, go on
            print(name, "skip:", str(exc).splitlines()[0][:100])
            continue
        cells = []
        executables = list(properties(ctx.device, v.VkPipelineInfoKHR(pipeline=pipe.handle)))
        for index in range(len(executables)):
            info = v.VkPipelineExecutableInfoKHR(pipeline=pipe.handle, executableIndex=index)
            for stat in statistics(ctx.device, info):
                label = stat.name if isinstance(stat.name, str) else v.ffi.string(stat.name).decode()
                cells.append(f"{label.replace(' ', '_')}={_value(stat)}")
        print(name, " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
