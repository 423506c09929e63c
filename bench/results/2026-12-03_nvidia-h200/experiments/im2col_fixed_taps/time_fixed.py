"""Experiment: im2col's stream path with each thread on one tap (STREAM_FIXED) against the taps carried
in the loop, and workgroups of 64 against 256, on the big im2col matrices, in one process (same clocks).

The copy probes run first (the % of copy is against bench_copy_wg256 of this run), then for each shape
and variant the modes in the order fixed, carried, fixed (an A/B/A, so that drift shows). Kernel time:
median of 20 back-to-back calls after 3 (Vulkan timestamps around each dispatch). The outputs of the
two modes are compared with each other byte for byte (the GPU tests compare them with the oracle on
smaller shapes). From the repository root, with an experimental build:

    PYTHONPATH=. SHADERKIT_BUILD=<build> python3 <this file> [SHAPE-SUBSTRING...]
"""

from __future__ import annotations

import sys

import numpy as np

import runtime.families.q8ta_conv2d.im2col as host
from bench.clocks import CudaContextHold
from bench.kernels import _layout
from bench.measure import summarize
from bench.roofline import measure_copy
from bench.suite import IM2COL_BIG
from runtime.core.device import Device
from runtime.core.manifest import load_manifest
from runtime.core.timing import spin_up, time_steps
from runtime.oplib.conv import conv_geometry

MODES = {"fixed": 1.0, "carried": -1.0}


def main(filters: list[str]) -> int:
    dev = Device()
    manifest = load_manifest()
    hold = CudaContextHold(dev)  # keeps the SM clock up between dispatches (bench/clocks.py)
    print(f"# {dev.info.name}; im2col kernel time, median of 20 back-to-back calls; CUDA context {hold.note}",
          flush=True)
    probes = measure_copy(dev, manifest, 256 << 20, 20, 3, print, spin_s=10.0)
    copy = max(p.value for p in probes if p.value)
    print(f"copy peak {copy:.0f} GB/s", flush=True)
    names = [n for n in manifest.names(role="im2col") if "native" in n]
    for shape in IM2COL_BIG:
        if filters and not any(f in shape.name for f in filters):
            continue
        x = np.random.default_rng(1).integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
        kernel = np.zeros((shape.groups, shape.C_in // shape.groups, shape.K, shape.K), np.int8)
        geom = conv_geometry(x.shape, kernel.shape, stride=shape.stride, padding=shape.padding, dilation=1,
                             groups=shape.groups)
        nbytes = host.matrix_bytes(geom, "native")
        with dev.alloc(nbytes) as out:
            for name in names:
                entry = manifest.variants[name]
                layout = _layout(manifest, entry)
                x_words = layout.pack(x)
                with dev.upload(x_words) as xb:
                    seen: dict[str, bytes] = {}
                    for mode in ("fixed", "carried", "fixed"):
                        host.STREAM_FIXED_MAX_IDLE = MODES[mode]
                        pl = host.plan_call(dev, entry, layout, geom)
                        step = host.im2col_step(dev, entry, layout, geom, xb, 5, out)
                        spin_up(dev, [step], 0.5)
                        t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
                        got = out.read(np.uint8)[:nbytes].tobytes()
                        same = seen.setdefault("ref", got) == got
                        pct = 100 * (x_words.nbytes + nbytes) / t / 1e9 / copy
                        print(f"{shape.name:28} {name:40} {mode:8} {host.PATH_NAMES[pl.path]:7} "
                              f"T={pl.stream_threads:3} fixed={int(pl.fixed_taps)} iters={pl.stream_iters:2} "
                              f"{t * 1e3:8.4f} ms {pct:5.1f} % copy {'same' if same else 'DIFFERS'}", flush=True)
                        if pl.path != host.PATH_STREAM:
                            break  # one timing: the modes only differ on the stream path
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
