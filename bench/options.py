"""What the bench's commands share: suite and repetition defaults, name filters, the device, the warm-up."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from bench.clocks import Spinner
from bench.clocks import read as read_clocks
from runtime.core.device import open_device as open_device

Log = Callable[[str], None]


def settle(p: argparse.ArgumentParser, args: argparse.Namespace,
           defaults: dict[str, tuple[int, int]]) -> argparse.Namespace:
    """--quick, and the suite's (reps, warm-up) defaults where they were not given; errors through `p`."""
    if args.quick:
        args.suite = "quick"
    reps, warmup = defaults.get(args.suite, defaults["full"])  # a suite without its own defaults: full's
    args.reps = reps if args.reps is None else args.reps
    args.warmup = warmup if args.warmup is None else args.warmup
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    return args


def matcher(spec: str) -> Callable[[str], bool]:
    """Comma-separated substrings -> a name filter (everything passes an empty spec)."""
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    return (lambda name: any(s in name for s in parts)) if parts else (lambda name: True)


def log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> str:
    """The host's 1/5/15-minute load averages (a CPU device shares the host with everything else)."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def warm_up(spinner: Spinner | None, seconds: float, log: Log) -> list[dict[str, Any]]:
    """Spin the GPU for `seconds` (sustained probe work) with its clocks read before and after."""
    before = read_clocks("before warm-up")
    if spinner is None or seconds <= 0 or not spinner.variant:
        return [before]
    log(f"warm-up: {seconds:.0f} s of {spinner.variant}")
    spinner.spin(seconds)
    return [before, read_clocks(f"after {seconds:.0f} s warm-up ({spinner.variant})")]
