"""Experiment: im2col's stream path with each thread on one tap (STREAM_FIXED) against the taps carried
in the loop, and workgroups of 64 against 256, on the big im2col matrices, in one process (same clocks).

The copy probes run first (the % of copy is against bench_copy_wg256 of this run), then for each shape
and variant the modes in the order fixed, carried, fixed (an A/B/A, so that drift shows). Kernel time:
median of 20 back-to-back calls after 3 (Vulkan timestamps around each dispatch). The outputs of the
two modes are compared with each other byte for byte (the GPU tests compare them with the oracle on
smaller shapes). From the repository root, with an experimental build:

    PYTHONPATH=. SHADERKIT_BUILD=<build> python3 <this file> [MODE,MODE,...] [SHAPE-SUBSTRING...]

(modes: fixed, carried, staged; run 2 used the default order fixed,carried,fixed). The setup it shares
with time_stage_rows.py moved to run_setup.py after the runs, with the same calls.
"""

from __future__ import annotations

import sys

import numpy as np
from run_setup import cases, open_run

import runtime.families.q8ta_conv2d.im2col as host
from bench.measure import summarize
from bench.suite import IM2COL_BIG, RESNET50
from runtime.core.timing import spin_up, time_steps

# (STREAM_FIXED_MIN_BLOCKS, STREAM_FIXED_MAX_IDLE, STAGED) per mode; run 2 had no staged path and
# patched STREAM_FIXED_MAX_IDLE alone (fixed 1.0, carried -1.0), before the minimum place size existed
MODES = {"fixed": (0, 1.0, False), "carried": (0, -1.0, False), "staged": (0, 1.0, True)}
ORDER = sys.argv[1].split(",") if len(sys.argv) > 1 and "," in sys.argv[1] else ["fixed", "carried", "fixed"]


def main(filters: list[str]) -> int:
    filters = [f for f in filters if "," not in f]
    dev, manifest, copy, _hold = open_run("im2col kernel time")
    names = [n for n in manifest.names(role="im2col") if "native" in n]
    for c in cases(dev, manifest, names, [*IM2COL_BIG, *RESNET50], filters):
        seen: dict[str, bytes] = {}
        for mode in ORDER:
            host.STREAM_FIXED_MIN_BLOCKS, host.STREAM_FIXED_MAX_IDLE, host.STAGED = MODES[mode]
            pl = host.plan_call(dev, c.entry, c.layout, c.geom)
            step = host.im2col_step(dev, c.entry, c.layout, c.geom, c.x, 5, c.out)
            spin_up(dev, [step], 0.5)
            t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
            got = c.out.read(np.uint8)[:c.nbytes].tobytes()
            same = seen.setdefault("ref", got) == got
            pct = c.percent_of_copy(t, copy)
            print(f"{c.shape.name:28} {c.entry.name:40} {mode:8} {host.PATH_NAMES[pl.path]:7} "
                  f"T={pl.stream_threads:3} fixed={int(pl.fixed_taps)} iters={pl.stream_iters:2} "
                  f"{t * 1e3:8.4f} ms {pct:5.1f} % copy {'same' if same else 'DIFFERS'}", flush=True)
            if pl.path not in (host.PATH_STREAM, host.PATH_STAGED):
                break  # one timing: the modes only differ on the stream path
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
