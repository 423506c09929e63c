"""Experiment: the staged im2col path with its shared rows padded by PAD words (the shader reads the
row width from the push constants, so only the host's plan changes), A/B in one process. From the
repository root:

    PYTHONPATH=. python3 <this file> PAD,PAD,... [SHAPE-SUBSTRING...]

Kernel time: median of 20 back-to-back calls after 3; % of copy against bench_copy_wg256 of this run;
each output compared byte for byte with the unpadded one of its variant.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "im2col_fixed_taps"))
from run_setup import cases, open_run

import runtime.families.q8ta_conv2d.im2col as host
from bench.measure import summarize
from bench.suite import IM2COL_BIG
from runtime.core.timing import spin_up, time_steps
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def main(pads: list[int], filters: list[str]) -> int:
    dev, manifest, copy, _hold = open_run("staged im2col, padded rows")
    names = [n for n in manifest.names(role="im2col") if "native" in n and "wg256" in n]
    for c in cases(dev, manifest, names, IM2COL_BIG, filters):
        ref = None
        for pad in [0, *pads, 0]:
            def padded(g: ConvGeometry, wg: int, mt: int, cap: int = host.STAGE_MAX_BYTES,
                       pad: int = pad) -> host.StagePlan | None:
                st = RULE(g, wg, mt, cap)
                if st is None or pad == 0:
                    return st
                width = st.width + pad
                return replace(st, width=width, words=st.words // st.width * width)
            vars(host)["stage_plan"] = padded
            pl = host.plan_call(dev, c.entry, c.layout, c.geom)
            step = host.im2col_step(dev, c.entry, c.layout, c.geom, c.x, 5, c.out)
            spin_up(dev, [step], 0.5)
            t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
            got = c.out.read(np.uint8)[:c.nbytes].tobytes()
            ref = ref or got
            st = pl.stage
            desc = f"rows={st.rows} width={st.width} words={st.words}" if st else "not staged"
            print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} pad={pad:2d} {desc:34} "
                  f"{t * 1e3:8.4f} ms {c.percent_of_copy(t, copy):5.1f} % copy "
                  f"{'same' if got == ref else 'DIFFERS'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main([int(p) for p in sys.argv[1].split(",")], sys.argv[2:]))
