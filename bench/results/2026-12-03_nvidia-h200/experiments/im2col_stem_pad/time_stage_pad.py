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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "im2col_fixed_taps"))
from run_setup import StageRule, sweep_stage_plans

import runtime.families.q8ta_conv2d.im2col as host
from runtime.oplib.conv import ConvGeometry

RULE = host.stage_plan


def padded(pad: int) -> StageRule:
    """The host's rule with each staged row `pad` words wider."""
    def plan(g: ConvGeometry, wg: int, mt: int, cap: int = host.STAGE_MAX_BYTES) -> host.StagePlan | None:
        st = RULE(g, wg, mt, cap)
        if st is None or pad == 0:
            return st
        width = st.width + pad
        return replace(st, width=width, words=st.words // st.width * width)
    return plan


def main(pads: list[int], filters: list[str]) -> int:
    for c, pad, pl, t, pct, same in sweep_stage_plans("staged im2col, padded rows", [0, *pads, 0], padded, filters,
                                                      lambda name: True):
        st = pl.stage
        desc = f"rows={st.rows} width={st.width} words={st.words}" if st else "not staged"
        print(f"{c.shape.name:28} {c.entry.name:40} {host.PATH_NAMES[pl.path]:7} pad={pad:2d} {desc:34} "
              f"{t * 1e3:8.4f} ms {pct:5.1f} % copy {'same' if same else 'DIFFERS'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main([int(p) for p in sys.argv[1].split(",")], sys.argv[2:]))
