"""The timestamp floor: kernel time (20 back-to-back calls, three times) of a one-workgroup copy of 64 uvec4
(bench_copy) and of the picked igemm on a 1x32x4x4 -> 32 1x1 conv (one workgroup, one K step). Run it
after sustained work (the sweep): alone, an idle GPU times it at a low clock.

    SHADERKIT_BUILD=<build> PYTHONPATH=. python bench/results/2026-12-03_nvidia-h200/experiments/igemm_loads/floor.py
"""
from contextlib import ExitStack

from runtime.core.device import open_device
from runtime.core.manifest import load_manifest
from runtime.families.bench_probes.op import copy_step
from runtime.families.q8ta_igemm.op import igemm_entry
from runtime.families.q8ta_igemm.timing import ConvLayer, _Rig, kernel_seconds, warm_up

with open_device(None) as dev:
    m = load_manifest()
    tiny = ConvLayer("tiny.c32@4", 1, 32, 4, 32, K=1)
    warm_up(dev, tiny, 3)
    with ExitStack() as stack:
        rig = _Rig(dev, m, tiny, stack)
        e = igemm_entry(m, dev, "4w4c", rig.geom, "float32", None)
        step, s = rig.igemm(e)
        times = " ".join(f"{kernel_seconds(dev, [step], 20) * 1e6:.2f}us" for _ in range(3))
        print("floor igemm", e.name, "S", s, times)
        ce = m.entries(role="bench_copy")[0]
        src, dst = rig.own(dev.alloc(1024, fill=1)), rig.own(dev.alloc(1024))
        cs = copy_step(dev, ce, src, dst, 64, 1)
        print("floor copy", ce.name, " ".join(f"{kernel_seconds(dev, [cs], 20) * 1e6:.2f}us" for _ in range(3)))
