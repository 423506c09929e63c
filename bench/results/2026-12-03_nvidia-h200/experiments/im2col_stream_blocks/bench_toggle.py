"""Experiment: `python -m bench` with the stream path's 16-byte block reads on or off, so that one run
times both (the SPIR-V is the same; the spec constant STREAM_SW picks the reads). From the repository
root:

    PYTHONPATH=. python3 bench/results/2026-12-03_nvidia-h200/experiments/im2col_stream_blocks/bench_toggle.py \
        on|off BENCH-ARGS...
"""

from __future__ import annotations

import sys

import runtime.families.q8ta_conv2d.im2col as im2col
from bench.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("on", "off"):
        raise SystemExit("usage: bench_toggle.py on|off BENCH-ARGS...")
    if "STREAM_BLOCK_STRIDES" not in vars(im2col):
        raise SystemExit("bench_toggle.py: apply stream_blocks.patch (in this folder) first: git apply ...")
    if sys.argv[1] == "off":
        vars(im2col)["STREAM_BLOCK_STRIDES"] = frozenset()  # word-by-word reads, as before the change
    raise SystemExit(main(sys.argv[2:]))
