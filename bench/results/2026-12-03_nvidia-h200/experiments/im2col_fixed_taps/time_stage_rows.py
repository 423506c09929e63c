"""Experiment: the staged im2col path at a given number of output rows per workgroup (the host's rule
picks 4 for the RGB 7x7/2 stem at batch 16), A/B in one process, same clocks. From the repository root:

    PYTHONPATH=. python3 <this file> ROWS,ROWS,... [SHAPE-SUBSTRING...]

Kernel time: median of 20 back-to-back calls after 3; % of copy against bench_copy_wg256 of this run;
each output compared byte for byte with the first one of its variant. (Run 5 ran it as committed,
except for later edits that change no timing: type annotations, a split f-string, and the shared-memory
cap stage_plan takes since.)
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
from run_setup import cases, open_run

import runtime.families.q8ta_conv2d.im2col as host
from bench.measure import summarize
from bench.suite import IM2COL_BIG
from runtime.core.timing import spin_up, time_steps
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def main(rows_list: list[int], filters: list[str]) -> int:
    dev, manifest, copy, _hold = open_run("staged im2col")
    names = [n for n in manifest.names(role="im2col") if "native" in n and "wg256" in n]
    for c in cases(dev, manifest, names, IM2COL_BIG, filters):
        ref = None
        for rows in [0, *rows_list]:  # 0: the host's rule
            def forced(g: ConvGeometry, wg: int, mt: int, cap: int = host.STAGE_MAX_BYTES,
                       rows: int = rows) -> host.StagePlan | None:
                st = RULE(g, wg, mt, cap)
                if st is None or rows == 0:
                    return st
                images = g.groups * g.N
                in_rows = (rows - 1) * g.stride[0] + (g.KH - 1) * g.dilation[0] + 1
                return replace(st, rows=rows, words=in_rows * st.width * g.Cg4,
                               workgroups=images * -(-g.H_out // rows))
            vars(host)["stage_plan"] = forced
            pl = host.plan_call(dev, c.entry, c.layout, c.geom)
            step = host.im2col_step(dev, c.entry, c.layout, c.geom, c.x, 5, c.out)
            spin_up(dev, [step], 0.5)
            t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
            got = c.out.read(np.uint8)[:c.nbytes].tobytes()
            ref = ref or got
            pct = c.percent_of_copy(t, copy)
            st = pl.stage
            rows_s, wgs_s = (str(st.rows), str(st.workgroups)) if st else ("-", "-")
            print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} rows={rows_s:>3} "
                  f"wgs={wgs_s:>5} {t * 1e3:8.4f} ms {pct:5.1f} % copy "
                  f"{'same' if got == ref else 'DIFFERS'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main([int(r) for r in sys.argv[1].split(",")], sys.argv[2:]))
