"""Two measurements of how many igemm workgroups an SM holds at once (the experiment README says why).

1. `probe`: the residency probe of this folder (templates/probe_residency.glsl.j2, built with
   SHADERKIT_BUILD=.gpu/build_probe): peak resident workgroups per SM by threads and shared memory.
3. `cmload`: cooperative-matrix loads from shared memory (templates/probe_cmload.glsl.j2) by the
   shared array's element type and row pitch.
2. `waves`: the shipped tensor-core igemm blocks at K split 1 on res2's 3x3 conv at batch 1..8 (98 to
   784 workgroups of 32 x 64): kernel time against the workgroup count; a step in time where the count
   passes a multiple of the SMs' capacity.

    SHADERKIT_BUILD=.gpu/build_probe PYTHONPATH=. python $E/residency.py probe
    PYTHONPATH=. python $E/residency.py waves
"""
from __future__ import annotations

import sys
from contextlib import ExitStack

import numpy as np

from bench.clocks import CudaContextHold
from runtime.core.device import open_device
from runtime.core.dispatch import Step
from runtime.core.manifest import load_manifest

SPIN_NS = 40_000
KIB = (0, 4, 8, 10, 12, 15, 16, 20, 24, 28, 32, 40, 48)


def probe(dev) -> None:
    m = load_manifest()
    if True:
        sms = 0
        for e in m.entries(role="probe_residency"):
            for kib in KIB:
                words = max(4, kib * 256 - (4 if kib == 48 else 0))
                with dev.alloc(4 * 600, fill=0) as live:
                    groups = 132 * 40
                    dev.run([Step(dev.pipeline(e, {"SH_WORDS": words}), {0: live}, {"spin": SPIN_NS}, (groups, 1, 1))])
                    peak = live.read(np.uint32)[256:512]
                    used = peak[peak > 0]
                    sms = max(sms, len(used))
                    print(f"{e.name:24s} shared {4 * words / 1024:5.1f} KiB: {len(used)} SMs; resident workgroups "
                          f"per SM max {used.max()} median {int(np.median(used))} min {used.min()}", flush=True)


def waves(dev) -> None:
    from runtime.families.q8ta_igemm.op import igemm_step, split_plan, split_scratch
    from runtime.families.q8ta_igemm.timing import ConvLayer, _Rig, kernel_seconds, warm_up

    m = load_manifest()
    names = [e.name for e in m.entries(role="igemm") if "coopmat_4w4c" in e.name and "emulated" not in e.name
             and "bm128" not in e.name]
    if True:
        warm_up(dev, ConvLayer("warm", 8, 64, 56, 64), 8)
        for name in names:
            e = m.variant(name)
            for n in range(1, 9):
                layer = ConvLayer(f"res2@b{n}", n, 64, 56, 64)
                with ExitStack() as stack:
                    rig = _Rig(dev, m, layer, stack)
                    plan = split_plan(dev, e, rig.geom, split_k=1)
                    with split_scratch(dev, e, rig.geom, plan) as scratch:
                        step = rig.resident(igemm_step(dev, m, e, rig.layout, rig.geom, rig.x, rig.w, rig.wsum,
                                                       rig.rq, rig.out, plan, scratch))
                        dev.run([step])
                        bad = rig.check() or ""
                        t = min(kernel_seconds(dev, [step], 20) for _ in range(2))
                    wgs = step.groups[0] * step.groups[1] * step.groups[2]
                print(f"{name} b{n}: {wgs:4d} workgroups {t * 1e6:7.2f} us {bad}", flush=True)


def cmload(dev) -> None:
    """probe_cmload: kernel time of 132 x 8 workgroups x 4 subgroups x ITERS iterations, per variant."""
    m = load_manifest()
    iters, groups = 4096, 132 * 8
    for e in m.entries(role="probe_cmload"):
        nb = int(e.axes["nb"])
        with dev.alloc(4 * 256 * groups * 4 * nb) as out:
            step = Step(dev.pipeline(e), {0: out}, {"iters": iters}, (groups, 1, 1))
            dev.run([step])
            t = min(min(dev.run([step] * 5, timestamps=True)) for _ in range(3))
        per_sm = groups * 4 * iters / 132 / (t * 1e6)
        print(f"{e.name:28s} {t * 1e6:8.1f} us  {per_sm:7.1f} subgroup iterations per SM per us "
              f"({per_sm * (1 + nb) / 1.98e3:.2f} fragment loads per SM per cycle at 1980 MHz)", flush=True)


if __name__ == "__main__":
    with open_device(None) as device:
        hold = CudaContextHold(device)
        print(device.info.name, "| CUDA context:", hold.note, flush=True)
        {"probe": probe, "waves": waves, "cmload": cmload}[sys.argv[1]](device)
        hold.close()
