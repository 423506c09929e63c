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
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "im2col_fixed_taps"))
from run_setup import StageRule, sweep_stage_plans

import runtime.families.q8ta_conv2d.im2col as host
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def forced(rows: int, blocks: int) -> StageRule:
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
    for c, _, pl, t, pct, same in sweep_stage_plans("staged im2col, column groups", [(0, 0), *combos, (0, 0)],
                                                    lambda rb: forced(*rb), filters, lambda name: "strip1" in name):
        st = pl.stage
        desc = (f"rows={st.rows} blocks={vars(st)['blocks']} {4 * st.words / 1024:5.1f} KiB wgs={st.workgroups}"
                if st else "not staged")
        print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} {desc:42} "
              f"{t * 1e3:8.4f} ms {pct:5.1f} % copy {'same' if same else 'DIFFERS'}", flush=True)
    return 0


if __name__ == "__main__":
    pairs = [tuple(int(v) for v in s.split(":")) for s in sys.argv[1].split(",")]
    raise SystemExit(main([(r, b) for r, b in pairs], sys.argv[2:]))
