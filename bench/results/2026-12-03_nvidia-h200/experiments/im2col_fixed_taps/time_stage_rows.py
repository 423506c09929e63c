"""Experiment: the staged im2col path at a given number of output rows per workgroup (the host's rule
picks 4 for the RGB 7x7/2 stem at batch 16), A/B in one process, same clocks. From the repository root:

    PYTHONPATH=. python3 <this file> ROWS,ROWS,... [SHAPE-SUBSTRING...]

Kernel time: median of 20 back-to-back calls after 3; % of copy against bench_copy_wg256 of this run;
each output compared byte for byte with the first one of its variant. (Run 5 ran it as committed,
except for later edits that change no timing: type annotations, a split f-string, the shared-memory
cap stage_plan takes since, and its loop moved into run_setup.sweep_stage_plans.)
"""

from __future__ import annotations

import sys
from dataclasses import replace

from run_setup import StageRule, sweep_stage_plans

import runtime.families.q8ta_conv2d.im2col as host
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def forced(rows: int) -> StageRule:
    """The host's rule with `rows` output rows a workgroup (0: the rule's own)."""
    def plan(g: ConvGeometry, wg: int, mt: int, cap: int = host.STAGE_MAX_BYTES) -> host.StagePlan | None:
        st = RULE(g, wg, mt, cap)
        if st is None or rows == 0:
            return st
        images = g.groups * g.N
        in_rows = (rows - 1) * g.stride[0] + (g.KH - 1) * g.dilation[0] + 1
        return replace(st, rows=rows, words=in_rows * st.width * g.Cg4, workgroups=images * -(-g.H_out // rows))
    return plan


def main(rows_list: list[int], filters: list[str]) -> int:
    for c, _, pl, t, pct, same in sweep_stage_plans("staged im2col", [0, *rows_list], forced, filters,
                                                    lambda name: True):
        st = pl.stage
        rows_s, wgs_s = (str(st.rows), str(st.workgroups)) if st else ("-", "-")
        print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} rows={rows_s:>3} "
              f"wgs={wgs_s:>5} {t * 1e3:8.4f} ms {pct:5.1f} % copy {'same' if same else 'DIFFERS'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main([int(r) for r in sys.argv[1].split(",")], sys.argv[2:]))
