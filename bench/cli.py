"""`python -m bench`: time every int8 variant on real-network shapes against the device's roofline and PyTorch.

`python -m bench tune [--quick]` writes the device's tuning cache instead (see bench/tune.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import roofline, tune
from bench.clocks import CudaContextHold, Spinner
from bench.clocks import read as read_clocks
from bench.kernels import Bench, Row, bench_conv, bench_gemm, bench_im2col, error_status, rates
from bench.options import Log, load_average, log_stderr, matcher, open_device, settle, warm_up
from bench.peer import Peer
from bench.report import markdown as render_markdown
from bench.report import slug, write
from bench.suite import SUITES, Suite
from runtime.core.device import Device
from runtime.core.manifest import load_manifest

KINDS = ("gemm", "im2col", "conv", "roofline")
# (reps, warm-up runs) when not given: lavapipe needs the quick suite to stay within minutes
DEFAULT_REPS = {"full": (20, 3), "quick": (10, 2), "micro": (2, 1)}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the small suite (same as --suite quick), for lavapipe")
    p.add_argument("--suite", choices=sorted(SUITES), default="full", help="shape set (default: full)")
    p.add_argument("--reps", type=int, help="calls per stream, timed (default: full 20, quick 10)")
    p.add_argument("--warmup", type=int, help="untimed calls before them (default: full 3, quick 2)")
    p.add_argument("--out", type=Path, help="results directory (default: bench/results/<date>_<device>)")
    p.add_argument("--only", action="append", default=[], metavar="KIND",
                   help=f"run only these parts, repeatable or comma-separated: {'|'.join(KINDS)} "
                        "(the roofline is always measured: every %% column needs it)")
    p.add_argument("--shapes", default="", help="comma-separated substrings: keep shapes whose name has one")
    p.add_argument("--variants", default="",
                   help="comma-separated substrings: keep int8 variants whose name has one (probes always run)")
    p.add_argument("--device", help="device index or name substring (default: $SHADERKIT_DEVICE / first GPU)")
    p.add_argument("--no-peer", action="store_true", help="skip PyTorch even where it is available")
    p.add_argument("--no-cuda-context", action="store_true",
                   help="do not hold a CUDA context open during the run (NVIDIA: the SM clock then drops between "
                        "tiny dispatches; bench/clocks.py)")
    p.add_argument("--no-profiler", action="store_true",
                   help="time the peer's kernels from CUDA graphs instead of torch.profiler")
    p.add_argument("--warm-s", type=float, help="spin the GPU this long before timing (default: the suite's)")
    p.add_argument("--budget-s", type=float, default=0.0,
                   help="start no new shape after this many seconds; the rest is listed as skipped (0: no limit)")
    args = p.parse_args(argv)
    only = {k.strip() for item in args.only for k in item.split(",") if k.strip()}
    unknown = only - set(KINDS)
    if unknown:
        p.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")
    args.only = only or set(KINDS)
    return settle(p, args, DEFAULT_REPS)


def buffer_memory(dev: Device) -> str:
    """Which memory type the runtime's host-visible buffers land in (best effort: it reads runtime internals).

    On a discrete GPU without a large BAR they live in system memory and every kernel is PCIe-bound;
    the copy-bandwidth probe then shows it too.
    """
    try:
        from runtime.core.buffers import _memory_candidates
        from runtime.core.vkapi import vk

        ctx = dev._ctx
        index = _memory_candidates(ctx, 0xFFFFFFFF)[0]
        mem = ctx.memory_properties.memoryTypes[index]
        heap = ctx.memory_properties.memoryHeaps[mem.heapIndex]
        v = vk()
        names = [n for bit, n in ((v.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, "DEVICE_LOCAL"),
                                  (v.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, "HOST_VISIBLE"),
                                  (v.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, "HOST_COHERENT"),
                                  (v.VK_MEMORY_PROPERTY_HOST_CACHED_BIT, "HOST_CACHED")) if mem.propertyFlags & bit]
        return f"memory type {index} ({'|'.join(names)}), heap of {heap.size / 2**30:.1f} GiB"
    except Exception as exc:  # informational only
        return f"unknown ({type(exc).__name__})"


def metadata(dev: Device, args: argparse.Namespace, peer: Peer | None, argv: Sequence[str] | None,
             now: dt.datetime) -> dict[str, Any]:
    i = dev.info
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    notes = [
        "two timings of every call, for us and the peer alike: **kernel** = GPU time of the kernels alone (ours: "
        "Vulkan timestamps around each dispatch, summed over a call's dispatches; the peer: torch.profiler's "
        "CUDA kernel times, or a CUDA graph where the cell says so) and **stream** = per-call time of N calls "
        "back to back (ours: N calls in one command buffer, one submit, first dispatch start to last end; the "
        "peer: N eager calls between two CUDA events). ours/peer = peer time / our time in the same mode "
        "(> 1: ours is faster); never one call between two events",
        "a conv is im2col + GEMM, two dispatches with a barrier between; its kernel time is their sum",
        "% peak compares a variant with its own unit's measured peak: tensor-core (coopmat) variants with "
        "bench_coopmat_peak, packed-dot (dot/sdot) ones with bench_dot_peak's dot/sdot modes, integer ones "
        "with its int mode, im2col with copy bandwidth",
        "inputs are uploaded once per shape and reused across runs; GEMM inputs are random packed words",
        "conv rows: `tuned` is the pair conv2d_q8 picks with this device's tuning cache (`python -m bench tune`),"
        " `heuristic` the pair without it, `best-gemm` the heuristic im2col with the GEMM variant fastest on this "
        f"shape in a {min(args.reps, 3)}-run screen of every GEMM variant",
        "the GEMM peer is int8 x int8 -> int32 (torch._int_mm, the fastest of every operand layout; no "
        "requantizing epilogue); fp16 torch.mm and fp8 torch._scaled_mm are reference rows of other precisions; "
        "the conv peer is cuDNN fp16 channels-last, not int8 (stock PyTorch on CUDA has no general int8 conv2d; the "
        "int8 column shows what it did with each shape)",
        "each timed output was compared once with NumPy (GEMM and conv within +-1 after requantization, "
        "im2col exactly) unless marked skipped",
    ]
    if i.device_type == "cpu":
        notes.append("this is a CPU implementation of Vulkan: the numbers say nothing about a GPU")
    return {
        "device": i.name, "device_type": i.device_type, "vendor_id": f"0x{i.vendor_id:04x}",
        "driver": f"{i.driver_name} {i.driver_info}".strip(), "api_version": i.api_version,
        "date": now.strftime("%Y-%m-%d %H:%M:%S UTC"), "suite": args.suite, "reps": args.reps,
        "warmup": args.warmup, "only": sorted(args.only), "shapes_filter": args.shapes,
        "variants_filter": args.variants, "timestamp_period_ns": i.limits.get("timestampPeriod"),
        "subgroup_size": i.subgroup_size, "buffer_memory": buffer_memory(dev),
        "peer": (peer.description if peer and peer.available else f"n/a: {peer.reason if peer else 'not needed'}"),
        "peer_reason": peer.reason if peer else "",
        "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"NumPy {np.__version__}",
        "command": command, "notes": notes,
    }


def run(args: argparse.Namespace, argv: Sequence[str] | None = None, dev: Device | None = None,
        log: Log = log_stderr) -> tuple[Path, list[Row]]:
    """The whole benchmark; returns the results directory and every row."""
    suite: Suite = SUITES[args.suite]
    dev = dev or open_device(args.device)
    manifest = load_manifest()
    now = dt.datetime.now(dt.UTC)
    keep_variant = matcher(args.variants)
    keep_shape = matcher(args.shapes)
    log(f"bench: {dev.info.name} ({dev.info.driver_name} {dev.info.driver_info}, Vulkan {dev.info.api_version}), "
        f"suite {args.suite}, {args.reps} reps after {args.warmup} warm-up")

    start, start_load = time.perf_counter(), load_average()
    deadline = start + args.budget_s if args.budget_s > 0 else math.inf
    warm_s = suite.pacing.warm_s if args.warm_s is None else args.warm_s
    hold = CudaContextHold(dev, enabled=not args.no_cuda_context)
    log(f"CUDA context: {hold.note}")
    spinner = Spinner(dev, manifest) if suite.pacing.spin_s > 0 or warm_s > 0 else None
    clocks = warm_up(spinner, warm_s, log)
    roof = roofline.measure(dev, manifest, suite.roofline, args.reps, args.warmup, log)
    log("roofline: " + ", ".join(f"{unit} {value:.4g}" for unit, value in roof.peaks.items())
        + f" in {time.perf_counter() - start:.1f} s")
    wants_peer = bool(args.only & {"gemm", "conv"})
    peer = Peer(enabled=not args.no_peer, profiler=not args.no_profiler) if wants_peer else None
    if peer is not None:
        log(f"peer: {peer.description if peer.available else 'n/a: ' + peer.reason}")
    b = Bench(dev, manifest, roof, peer or Peer(enabled=False), args.reps, args.warmup, log, keep_variant,
              pacing=suite.pacing, spinner=spinner)

    rows: list[Row] = []
    parts: list[tuple[str, list[Any], Callable[[Bench, Any], list[Row]]]] = [
        ("gemm", suite.gemm, bench_gemm), ("im2col", suite.im2col, bench_im2col), ("conv", suite.conv, bench_conv)]
    for kind, shapes, fn in parts:
        if kind not in args.only:
            continue
        chosen = [s for s in shapes if keep_shape(s.name)]
        for i, shape in enumerate(chosen, 1):
            if time.perf_counter() > deadline:
                rows.append(Row(kind, shape.name, shape.describe(), "(shape)",
                                status=f"skipped: time budget (--budget-s {args.budget_s:g}) spent"))
                continue
            t0 = time.perf_counter()
            try:
                got = fn(b, shape)
            except Exception as exc:  # e.g. a buffer over the device's limits: report it, go on
                got = [Row(kind, shape.name, shape.describe(), "(shape)", status=error_status(exc))]
            rows += got
            log(_progress(kind, i, len(chosen), shape, got, time.perf_counter() - t0))
        if chosen:  # right after the part's last timing: the clock it ran at, before the host's idle time
            clocks.append(read_clocks(f"after the {kind} part"))
    clocks.append(read_clocks("end of run"))
    hold.close()
    if spinner is not None:
        spinner.close()
    # a kernel faster than its unit's probe means the probe underestimates the unit: lift the ceiling
    for unit in roofline.raise_to_kernels(roof, rates(rows)):
        log(f"roofline: PROBE BEATEN: {roof.raised[unit]}")
    for r in rows:
        b.rate(r)

    out_dir = args.out or RESULTS_DIR / f"{now:%Y-%m-%d}_{slug(dev.info.name)}"
    meta = metadata(dev, args, peer, argv, now)
    meta["clocks"] = clocks
    meta["cuda_context"] = hold.note
    # a CPU device (lavapipe) shares the host: its numbers mean little while other work loads it
    meta["host_load"] = f"load average {start_load} at the start, {load_average()} at the end"
    meta["elapsed_s"] = round(time.perf_counter() - start, 1)
    paths = write(out_dir, meta, roof, rows, b.peer_sets)
    print(render_markdown(meta, roof, rows, b.peer_sets), end="")
    log(f"bench: wrote {', '.join(str(p) for p in paths.values())} ({meta['elapsed_s']} s)")
    return out_dir, rows


def _progress(kind: str, i: int, n: int, shape: Any, rows: list[Row], seconds: float) -> str:
    timed = [r for r in rows if r.kind == kind and r.stats is not None]
    failed = sum(r.check.startswith("FAILED") for r in rows)
    head = f"[{kind} {i}/{n}] {shape.name} ({shape.describe()}): "
    if not timed:
        return head + f"nothing timed ({rows[0].status if rows else 'no variants'}) [{seconds:.1f} s]"
    best = min(timed, key=lambda r: r.stats.median if r.stats else float("inf"))
    rate = f"{best.gbps:.3g} GB/s" if best.gbps is not None else f"{best.tops or 0:.3g} TOPS"
    peer = f", ours/peer {best.ratio_kernel:.2f}x (kernel)" if best.ratio_kernel else ""
    bad = f", {failed} FAILED check(s)" if failed else ""
    return head + f"{len(timed)} timed, best {best.variant} {rate}{peer}{bad} [{seconds:.1f} s]"


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["tune"]:
        return tune.main(words[1:])
    args = parse_args(words)
    _, rows = run(args, words)
    # a wrong result makes the whole run fail, after the report is written
    return 1 if any(r.check.startswith("FAILED") for r in rows) else 0
