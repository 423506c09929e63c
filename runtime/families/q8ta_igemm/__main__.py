"""Implicit GEMM vs im2col + GEMM (and cuDNN fp16 channels-last, where PyTorch runs) on ResNet-50's 3x3 convs.

    python -m runtime.families.q8ta_igemm [--reps N] [--rounds R] [--warm-s S] [--budget-s S] [--small] [--no-screen]
                                          [--no-peer] [--verbose] [--layout L] [--device SEL] [NAME ...]

Layers: ResNet-50's seven 3x3 conv shapes at batch 1 and 8 (--small: little ones for a CPU device); NAME
keeps layers whose name holds it. GPU kernel times (timestamps, `reps` calls in one submit, after a
--warm-s spin of the device) of every igemm variant, of the im2col + GEMM pair conv2d_q8 picks and of
that im2col with the fastest GEMM of a short screen (runtime/families/q8ta_igemm/timing.py); cuDNN's
kernel time from bench/peer.py (torch.profiler, else CUDA-graph replay). Ratios > 1: igemm is faster.
"pick": the igemm conv2d_q8 runs, the tuning cache's verdict at its K split where `python -m bench
tune` recorded one for the layer's class (`name S=k`), else the op's own pick.
--device: an index or a substring of the device name (default: $SHADERKIT_DEVICE, else the first
discrete GPU, else lavapipe). Layers stop being started after --budget-s seconds. --layout: x's layout
for every path (default 4w4c, conv2d_q8's; 4c is channels-last, as cuDNN's input is).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from runtime.core.device import open_device
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.op import DEFAULT_LAYOUT

from .timing import RESNET50_3X3, SMALL_3X3, ConvLayer, LayerTiming, time_layer, warm_up


def _peer(enabled: bool) -> tuple[Any, str]:
    """bench/peer.py's PyTorch peer, or None and why not (the bench is not part of the runtime: looked up
    only here, and only when asked for)."""
    if not enabled:
        return None, "disabled (--no-peer)"
    try:
        from bench.peer import Peer
    except Exception as exc:  # not run from the repository, or a broken install
        return None, f"bench.peer not importable ({type(exc).__name__}: {exc})"
    peer = Peer()
    return (peer, peer.description) if peer.available else (None, peer.reason)


def _cudnn_seconds(peer: Any, layer: ConvLayer) -> tuple[float | None, str]:
    if peer is None:
        return None, ""
    from bench.suite import ConvShape

    shape = ConvShape(layer.name, layer.N, layer.C_in, layer.H, layer.H, layer.C_out, layer.K, layer.stride,
                      layer.K // 2)
    best = peer.conv(shape, 20, 3).best
    if best is None or best.seconds("kernel") is None:
        return None, "no cuDNN time"
    return best.seconds("kernel"), best.kernel_method


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.4f}"


def _ratio(slow: float | None, fast: float | None) -> str:
    return "n/a" if not slow or not fast else f"{slow / fast:.2f}x"


def _row(t: LayerTiming, cudnn: float | None) -> str:
    best = t.best_igemm
    best_s = best[1] if best else None
    pick_s = t.igemm.get(t.igemm_pick)
    pair = min((s for s in (t.pair_s, t.best_pair_s) if s is not None), default=None)
    return (f"{t.layer.name:22} {_ms(best_s):>9} {_ms(pick_s):>9} {_ms(t.pair_s):>9} {_ms(t.best_pair_s):>9} "
            f"{_ratio(pair, best_s):>7} {_ms(cudnn):>9} {_ratio(cudnn, best_s):>7}  "
            f"{best[0] if best else '-'} (S={t.splits.get(best[0], 1) if best else '-'}) | "
            f"{t.pair[0]} + {t.pair[1]} | best GEMM {t.best_gemm or '-'} | pick {t.igemm_pick or '-'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.families.q8ta_igemm",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("names", nargs="*", help="substrings of layer names (default: every layer)")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per path, one submit (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin timings per path, fastest kept (default 2)")
    parser.add_argument("--warm-s", type=float, default=10.0, help="spin the device this long first (default 10)")
    parser.add_argument("--budget-s", type=float, default=110.0, help="start no layer after this many seconds")
    parser.add_argument("--small", action="store_true", help="little layers, for a CPU device")
    parser.add_argument("--no-screen", action="store_true", help="skip the screen of every GEMM variant")
    parser.add_argument("--no-peer", action="store_true", help="skip cuDNN (PyTorch)")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT,
                        help=f"x's layout (default {DEFAULT_LAYOUT}; 4c: channels-last)")
    parser.add_argument("--device", default=None, help="device index or name substring")
    parser.add_argument("--verbose", action="store_true", help="also print every igemm variant's time")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.rounds < 1:
        parser.error("--reps and --rounds must be >= 1")
    known = sorted(load_manifest().layouts)
    if args.layout not in known:
        parser.error(f"--layout {args.layout!r}: the layouts are {', '.join(known)}")
    pool = SMALL_3X3 if args.small else RESNET50_3X3
    layers = [s for s in pool if not args.names or any(n in s.name for n in args.names)]
    if not layers:
        parser.error(f"no layer matches {args.names}; layers: {[s.name for s in pool]}")
    start = time.perf_counter()
    with open_device(args.device) as dev:
        peer, peer_note = _peer(not args.no_peer)
        print(f"{dev.info.name} ({dev.info.driver_name} {dev.info.driver_info}); median kernel time of {args.reps} "
              f"back-to-back calls; x in {args.layout}; peer: {peer_note}", flush=True)
        warm_up(dev, layers[0], args.warm_s)
        print(f"{'layer':22} {'igemm ms':>9} {'pick ms':>9} {'pair ms':>9} {'best ms':>9} {'pair/ig':>7} "
              f"{'cuDNN ms':>9} {'cuDNN/ig':>7}  fastest igemm | conv2d_q8's im2col + GEMM | fastest GEMM",
              flush=True)
        ratios: list[float] = []
        pick_ratios: list[float] = []
        for i, layer in enumerate(layers):
            if time.perf_counter() - start > args.budget_s:
                print(f"time budget spent: {len(layers) - i} layer(s) not timed")
                break
            cudnn, method = _cudnn_seconds(peer, layer)  # first: torch gives its memory back before ours
            t = time_layer(dev, layer, args.reps, screen=not args.no_screen, rounds=args.rounds, layout=args.layout)
            print(_row(t, cudnn) + (f" | cuDNN: {method}" if method else ""), flush=True)
            if args.verbose:
                for name, seconds in sorted(t.igemm.items(), key=lambda kv: kv[1]):
                    print(f"    {_ms(seconds):>9} ms  {name} (S={t.splits.get(name, 1)})")
            for name, why in sorted(t.failed.items()):
                print(f"    failed: {name}: {why}")
            best, pick_s = t.best_igemm, t.igemm.get(t.igemm_pick)
            if cudnn and best:
                ratios.append(cudnn / best[1])
            if cudnn and pick_s:
                pick_ratios.append(cudnn / pick_s)
        for what, got in (("igemm", ratios), ("conv2d_q8's igemm pick", pick_ratios)):
            if got:
                geo = math.exp(sum(math.log(r) for r in got) / len(got))
                print(f"cuDNN / {what}: geometric mean {geo:.2f}x, lowest {min(got):.2f}x over {len(got)} layers "
                      f"(target >= 1.0x on every one)")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
