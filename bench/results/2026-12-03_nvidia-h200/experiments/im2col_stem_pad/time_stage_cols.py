"""Experiment: the staged im2col path with workgroups of ROWS output rows x BLOCKS row blocks (a column
group of each row: `stage_blocks`), A/B in one process. ROWS:BLOCKS 0:0 is the host's rule. From the
repository root, with run2_column_groups.patch of this folder applied (`git apply`; the shipped
shader has no column groups):

    PYTHONPATH=. python3 <this file> ROWS:BLOCKS,... [SHAPE-SUBSTRING...]

Kernel time: median of 20 back-to-back calls after 3; % of copy against bench_copy_wg256 of this run;
each output compared byte for byte with the rule's output of its variant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "im2col_fixed_taps"))
from run_setup import cases, open_run

import runtime.families.q8ta_conv2d.im2col as host
from bench.measure import summarize
from bench.suite import IM2COL_BIG
from runtime.core.timing import spin_up, time_steps
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def forced(rows: int, blocks: int) -> Callable[..., host.StagePlan | None]:
    def plan(g: ConvGeometry, wg: int, mt: int, cap: int = host.STAGE_MAX_BYTES) -> host.StagePlan | None:
        st = RULE(g, wg, mt, cap)
        if st is None or rows == 0:
            return st
        (SH, SW), (DH, DW) = g.stride, g.dilation
        rb = -(-g.W_out // 4)
        b = min(blocks, rb)
        width = (4 * b - 1) * SW + (g.KW - 1) * DW + 1
        in_rows = (rows - 1) * SH + (g.KH - 1) * DH + 1
        # `blocks` is the patch's field (run2_column_groups.patch), unknown to the shipped StagePlan
        fields: dict[str, Any] = {"rows": rows, "blocks": b, "width": width, "words": in_rows * width * g.Cg4,
                                  "workgroups": g.groups * g.N * -(-g.H_out // rows) * -(-rb // b)}
        return replace(st, **fields)
    return plan


def main(combos: list[tuple[int, int]], filters: list[str]) -> int:
    dev, manifest, copy, _hold = open_run("staged im2col, column groups")
    names = [n for n in manifest.names(role="im2col") if "native" in n and "wg256" in n and "strip1" in n]
    for c in cases(dev, manifest, names, IM2COL_BIG, filters):
        ref = None
        for rows, blocks in [(0, 0), *combos, (0, 0)]:
            vars(host)["stage_plan"] = forced(rows, blocks)
            pl = host.plan_call(dev, c.entry, c.layout, c.geom)
            step = host.im2col_step(dev, c.entry, c.layout, c.geom, c.x, 5, c.out)
            c.out.fill(0x5A)
            spin_up(dev, [step], 0.5)
            t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
            got = c.out.read(np.uint8)[:c.nbytes].tobytes()
            ref = ref or got
            st = pl.stage
            desc = (f"rows={st.rows} blocks={vars(st)['blocks']} {4 * st.words / 1024:5.1f} KiB wgs={st.workgroups}"
                    if st else "not staged")
            print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} {desc:42} "
                  f"{t * 1e3:8.4f} ms {c.percent_of_copy(t, copy):5.1f} % copy "
                  f"{'same' if got == ref else 'DIFFERS'}", flush=True)
    vars(host)["stage_plan"] = RULE
    return 0


if __name__ == "__main__":
    pairs = [tuple(int(v) for v in s.split(":")) for s in sys.argv[1].split(",")]
    raise SystemExit(main([(r, b) for r, b in pairs], sys.argv[2:]))
