"""Experiment: `python -m bench` with the stream path's tap chains on (as in the patch) or off, so that one run
times both on the same SPIR-V (off sends CHAINS 0: a unit per block, as before the change). It needs
tap_chains.patch (in this folder) applied. From the repository root:

    PYTHONPATH=. python3 bench/results/2026-12-03_nvidia-h200/experiments/im2col_tap_chains/bench_chains.py \
        on|off BENCH-ARGS...
"""

from __future__ import annotations

import sys

import runtime.families.q8ta_conv2d.im2col as im2col
from bench.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("on", "off"):
        raise SystemExit("usage: bench_chains.py on|off BENCH-ARGS...")
    if "stream_chains" not in vars(im2col):
        raise SystemExit("bench_chains.py: apply tap_chains.patch (in this folder) first: git apply ...")
    if sys.argv[1] == "off":
        vars(im2col)["stream_chains"] = lambda geom, matrix: (0, 1)
    raise SystemExit(main(sys.argv[2:]))
