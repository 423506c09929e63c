"""The sweep of this folder: every q8ta_igemm_coopmat hardware variant of a build (generic layouts left
out) x x's layout x K split S on ResNet-50's 3x3 layers; kernel time (Vulkan timestamps, best of 2 x 20
back-to-back calls), each output checked against conv2d_q8's; cuDNN fp16 channels-last kernel time
from bench/peer.py. S 0 is the op's own split (marked * in the output).

    SHADERKIT_BUILD=<build> PYTHONPATH=. python bench/results/2026-12-03_nvidia-h200/experiments/igemm_loads/sweep.py \
        [LAYER,...] [VARIANT-SUBSTRING,...] [S,...] [LAYOUT,...]
"""
from __future__ import annotations

import sys
from contextlib import ExitStack

from bench.peer import Peer
from bench.suite import ConvShape
from runtime.core.device import open_device
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_igemm.op import igemm_entry, igemm_step, split_plan, split_scratch
from runtime.families.q8ta_igemm.timing import RESNET50_3X3, _Rig, kernel_seconds, warm_up
from runtime.oplib.variants import input_layout_reason


def _arg(i: int) -> list[str] | None:
    return sys.argv[i].split(",") if len(sys.argv) > i and sys.argv[i] else None


def main() -> None:
    names, wanted = _arg(1), _arg(2)
    splits = [int(s) for s in (_arg(3) or ["1", "2", "4", "8", "16", "32"])]
    layouts = _arg(4) or ["4w4c"]
    peer = Peer()
    with open_device(None) as dev:
        m = load_manifest()
        layers = [s for s in RESNET50_3X3 if not names or any(n in s.name for n in names)]
        warm_up(dev, layers[0], 8)
        for layer in layers:
            cudnn = None
            if peer.available:
                shape = ConvShape(layer.name, layer.N, layer.C_in, layer.H, layer.H, layer.C_out, layer.K,
                                  layer.stride, layer.K // 2)
                best = peer.conv(shape, 20, 3).best
                cudnn = best.seconds("kernel") if best else None
            for layout in layouts:
                rows = []
                with ExitStack() as stack:
                    rig = _Rig(dev, m, layer, stack, layout)
                    pick = igemm_entry(m, dev, layout, rig.geom, "float32", None).name
                    entries = [e for e in m.entries(role="igemm") if "coopmat" in e.name and "emulated" not in e.name
                               and input_layout_reason(e.axes, layout) is None and "generic" not in e.name
                               and (not wanted or any(v in e.name for v in wanted))]
                    for e in entries:
                        seen = set()
                        for s in splits:
                            plan = split_plan(dev, e, rig.geom, split_k=s or None)
                            if plan.splits in seen:
                                continue
                            seen.add(plan.splits)
                            try:
                                with split_scratch(dev, e, rig.geom, plan) as scratch:
                                    step = rig.resident(igemm_step(dev, m, e, rig.layout, rig.geom, rig.x, rig.w,
                                                                   rig.wsum, rig.rq, rig.out, plan, scratch))
                                    rig.out.fill(0x7B)
                                    dev.run([step])
                                    bad = rig.check() or ""
                                    t = min(kernel_seconds(dev, [step], 20) for _ in range(2))
                            except Exception as exc:
                                print(f"skip {e.name} S={s}: {exc}"[:160])
                                break
                            rows.append((e.name, plan.splits, t, bad, "auto" if s == 0 else ""))
                good = [r for r in rows if not r[3]]
                if good:
                    b = min(good, key=lambda r: r[2])
                    ratio = f"{cudnn / b[2]:.2f}x" if cudnn else "n/a"
                    print(f"## {layer.name} {layout} cuDNN {cudnn * 1e3 if cudnn else float('nan'):.4f} ms; best "
                          f"{b[2] * 1e3:.4f} ms {b[0]} S={b[1]} -> cuDNN/ours {ratio}; pick {pick}", flush=True)
                for name, s, t, bad, auto in rows:
                    print(f"   {t * 1e3:8.4f} ms S={s:2d}{'*' if auto else ' '} {name} {bad}", flush=True)


if __name__ == "__main__":
    main()
