"""`python -m bench`: time every int8 variant on real-network shapes against the device's roofline and PyTorch."""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import roofline
from bench.kernels import Bench, Row, bench_conv, bench_gemm, bench_im2col, error_status
from bench.peer import Peer
from bench.report import markdown as render_markdown
from bench.report import slug, write
from bench.suite import SUITES, Suite
from runtime.core.device import Device, default_device
from runtime.core.manifest import load_manifest

KINDS = ("gemm", "im2col", "conv", "roofline")
# (reps, warm-up runs) when not given: lavapipe needs the quick suite to stay within minutes
DEFAULT_REPS = {"full": (20, 3), "quick": (10, 2), "micro": (2, 1)}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the small suite (same as --suite quick), for lavapipe")
    p.add_argument("--suite", choices=sorted(SUITES), default="full", help="shape set (default: full)")
    p.add_argument("--reps", type=int, help="timed runs per variant and shape (default: full 20, quick 10)")
    p.add_argument("--warmup", type=int, help="untimed runs before them (default: full 3, quick 2)")
    p.add_argument("--out", type=Path, help="results directory (default: bench/results/<date>_<device>)")
    p.add_argument("--only", action="append", default=[], metavar="KIND",
                   help=f"run only these parts, repeatable or comma-separated: {'|'.join(KINDS)} "
                        "(the roofline is always measured: every %% column needs it)")
    p.add_argument("--shapes", default="", help="comma-separated substrings: keep shapes whose name has one")
    p.add_argument("--variants", default="",
                   help="comma-separated substrings: keep int8 variants whose name has one (probes always run)")
    p.add_argument("--device", help="device index or name substring (default: $SHADERKIT_DEVICE / first GPU)")
    p.add_argument("--no-peer", action="store_true", help="skip PyTorch even where it is available")
    args = p.parse_args(argv)
    only = {k.strip() for item in args.only for k in item.split(",") if k.strip()}
    unknown = only - set(KINDS)
    if unknown:
        p.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")
    args.only = only or set(KINDS)
    if args.quick:
        args.suite = "quick"
    reps, warmup = DEFAULT_REPS[args.suite]
    args.reps = reps if args.reps is None else args.reps
    args.warmup = warmup if args.warmup is None else args.warmup
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    return args


def _matcher(spec: str) -> Callable[[str], bool]:
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    return (lambda name: any(s in name for s in parts)) if parts else (lambda name: True)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        "times are GPU timestamps around each dispatch (timestampPeriod applied); a conv is im2col + GEMM, two "
        "dispatches with a barrier between, and its time is their sum",
        "inputs are uploaded once per shape and reused across runs; GEMM inputs are random packed words",
        "conv rows: `auto` is the pair conv2d_q8 picks; `best-gemm` keeps its im2col and uses the GEMM variant "
        f"that was fastest on this shape in a {min(args.reps, 3)}-run screen of every GEMM variant",
        "ours/peer = peer time / our time (> 1: ours is faster); torch._int_mm returns int32 without our "
        "requantizing epilogue, and the conv peer is fp16 (cuDNN, channels-last), not int8: reference points "
        "rather than like-for-like comparisons",
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
        "host": f"{platform.node()} {platform.machine()}, Python {platform.python_version()}, "
                f"NumPy {np.__version__}",
        "command": command, "notes": notes,
    }


def run(args: argparse.Namespace, argv: Sequence[str] | None = None, dev: Device | None = None,
        log: Callable[[str], None] = _log) -> tuple[Path, list[Row]]:
    """The whole benchmark; returns the results directory and every row."""
    suite: Suite = SUITES[args.suite]
    if dev is None:
        selector = int(args.device) if args.device and args.device.isdigit() else args.device
        dev = Device(selector) if selector is not None else default_device()
    manifest = load_manifest()
    now = dt.datetime.now(dt.UTC)
    keep_variant = _matcher(args.variants)
    keep_shape = _matcher(args.shapes)
    log(f"bench: {dev.info.name} ({dev.info.driver_name} {dev.info.driver_info}, Vulkan {dev.info.api_version}), "
        f"suite {args.suite}, {args.reps} reps after {args.warmup} warm-up")

    start = time.perf_counter()
    roof = roofline.measure(dev, manifest, suite.roofline, args.reps, args.warmup, log)
    log(f"roofline: copy {roof.copy_gbps or float('nan'):.4g} GB/s, int8 dot peak {roof.dot_tops or float('nan'):.4g}"
        f" TOPS ({roof.dot_mode}) in {time.perf_counter() - start:.1f} s")
    wants_peer = bool(args.only & {"gemm", "conv"})
    peer = Peer(enabled=not args.no_peer) if wants_peer else None
    if peer is not None:
        log(f"peer: {peer.description if peer.available else 'n/a: ' + peer.reason}")
    b = Bench(dev, manifest, roof, peer or Peer(enabled=False), args.reps, args.warmup, log, keep_variant)

    rows: list[Row] = []
    parts: list[tuple[str, list[Any], Callable[[Bench, Any], list[Row]]]] = [
        ("gemm", suite.gemm, bench_gemm), ("im2col", suite.im2col, bench_im2col), ("conv", suite.conv, bench_conv)]
    for kind, shapes, fn in parts:
        if kind not in args.only:
            continue
        chosen = [s for s in shapes if keep_shape(s.name)]
        for i, shape in enumerate(chosen, 1):
            t0 = time.perf_counter()
            try:
                got = fn(b, shape)
            except Exception as exc:  # e.g. a buffer over the device's limits: report it, go on
                got = [Row(kind, shape.name, shape.describe(), "(shape)", status=error_status(exc))]
            rows += got
            log(_progress(kind, i, len(chosen), shape, got, time.perf_counter() - t0))

    out_dir = args.out or RESULTS_DIR / f"{now:%Y-%m-%d}_{slug(dev.info.name)}"
    meta = metadata(dev, args, peer, argv, now)
    meta["elapsed_s"] = round(time.perf_counter() - start, 1)
    paths = write(out_dir, meta, roof, rows)
    print(render_markdown(meta, roof, rows), end="")
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
    peer = f", ours/peer {best.peer_ratio:.2f}x" if best.peer_ratio else ""
    bad = f", {failed} FAILED check(s)" if failed else ""
    return head + f"{len(timed)} timed, best {best.variant} {rate}{peer}{bad} [{seconds:.1f} s]"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _, rows = run(args, argv)
    # a wrong result makes the whole run fail, after the report is written
    return 1 if any(r.check.startswith("FAILED") for r in rows) else 0
