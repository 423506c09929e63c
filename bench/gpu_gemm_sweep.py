"""`python -m bench.gpu_gemm_sweep`: every tensor-core int8 GEMM variant on big and conv-shaped GEMMs.

For a GPU with int8 cooperative matrices (H100/H200). Each variant of role `gemm` with a `coop` axis
(q8ta_gemm_coopmat, q8ta_gemm_coopmat_pipe; the emulated twins only with --emulated) is
  checked   once, exactly: int32 accumulators through identity requantization of small operands on a
            (G=2, M=333, K=300, N=282) GEMM, which cuts every block size into whole and partial blocks;
  timed     on each shape with GPU timestamps: N runs back to back in one submit (N sized to ~40 ms of
            GPU time, 3..100), after a ~10 s warm-up that spins the clocks up; the median run gives TOPS;
  checked   again on each timed shape: sampled output rows against NumPy (float64 matmul, exact) after
            real requantization, +-1.
Beside them torch._int_mm (A row-major, B column-major: cuBLASLt's fast path), kernel time by CUDA graph
replay, where PyTorch with CUDA is importable. A failing variant prints its error and the sweep goes on;
past --budget-s no new measurement starts. Prints one table (TOPS per variant and shape) and writes it
with the raw numbers to --out (markdown + .json beside it).

On the lent GPU, from the repository root with build/ made here (make shaders) and .gl/.whl carried
(/work/shared/gpu/prepare-carry.sh), after the prologue that /work/shared/gpu/prologue.sh prints:
  python3 -m bench.gpu_gemm_sweep --out $OUT/gemm_sweep.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.clocks import read as read_clocks
from bench.clocks import summary as clock_summary
from bench.measure import DeviceInputs, spin_up, time_steps
from bench.peer import Peer
from runtime.core.buffers import Buffer
from runtime.core.device import Device, Step
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.select import device_unfit
from runtime.families.q8ta_conv2d import oracle as reference
from runtime.families.q8ta_conv2d.op import run_gemm_q8
from runtime.oplib.gemm_formats import unpack_weights_q8
from runtime.oplib.gemm_q8 import GemmGeometry, emulated, gemm_step
from runtime.oplib.q8_checks import first_mismatch, small_operands
from runtime.oplib.requant import Requant, check_requant

SENTINEL = 0x7B  # output bytes before a timed run: a variant that writes nothing fails its check
INT8_VAR = (256**2 - 1) / 12  # variance of a uniform int8
SAMPLED_ROWS = 48
CHECK_SHAPE = (2, 333, 75, 282)  # G, M, K4, OCg of the exact check


@dataclass(frozen=True)
class Shape:
    """An int8 GEMM (M x K) @ (K x N), named M x K x N as in bench/suite.py."""

    name: str
    M: int
    K: int
    N: int

    @property
    def ops(self) -> int:
        return 2 * self.M * self.K * self.N


SHAPES = (
    Shape("2048^3", 2048, 2048, 2048),
    Shape("4096^3", 4096, 4096, 4096),
    Shape("8192^3", 8192, 8192, 8192),
    Shape("3136x576x64", 3136, 576, 64),  # ResNet-50 res2 3x3 conv, batch 1
    Shape("196x2304x256", 196, 2304, 256),  # res4 3x3
    Shape("49x4608x512", 49, 4608, 512),  # res5 3x3
)


@dataclass
class Cell:
    """One variant on one shape: its median kernel seconds, or why there is none; the sampled check."""

    seconds: float | None = None
    status: str = ""
    check: str = ""

    def text(self, shape: Shape) -> str:
        if self.seconds is None:
            return self.status or "-"
        tops = f"{shape.ops / self.seconds / 1e12:.1f}"
        return tops if self.check == "ok" else f"{tops} ({self.check.split(':')[0]})"


@dataclass
class Row:
    name: str
    check: str = ""
    cells: dict[str, Cell] = field(default_factory=dict)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def nvidia_icd() -> None:
    """Where $VK_DRIVER_FILES is unset and the NVIDIA ICD file names a library that is not installed
    (seen on a lent H100), point the loader at a copy naming libEGL_nvidia.so.0, as bench/gpu_run.sh does."""
    if os.environ.get("VK_DRIVER_FILES"):
        return
    for icd in ("/usr/share/vulkan/icd.d/nvidia_icd.json", "/etc/vulkan/icd.d/nvidia_icd.json",
                "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"):
        path = Path(icd)
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text())
            lib = str(doc["ICD"]["library_path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        listed = ""
        if shutil.which("ldconfig"):
            listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
        if Path(lib).exists() or Path(lib).name in listed:
            os.environ["VK_DRIVER_FILES"] = icd
        else:
            doc["ICD"]["library_path"] = "libEGL_nvidia.so.0"
            fixed = Path("/tmp/shaderkit_nvidia_icd.json")
            fixed.write_text(json.dumps(doc))
            os.environ["VK_DRIVER_FILES"] = str(fixed)
        log(f"VK_DRIVER_FILES={os.environ['VK_DRIVER_FILES']} (library {lib})")
        return


# -- the variants ----------------------------------------------------------------------------------------


def tensor_core_variants(manifest: Manifest, dev: Device, with_emulated: bool) -> tuple[list[VariantEntry], list[Row]]:
    """The runnable tensor-core GEMM variants, and rows for those that cannot run here (with the reason)."""
    runnable, skipped = [], []
    for entry in manifest.entries(role="gemm"):
        if "coop" not in entry.axes or (emulated(entry.axes) and not with_emulated):
            continue
        lacks = dev.supports(entry.features)
        unfit = device_unfit(entry, dev)
        if lacks or unfit:
            skipped.append(Row(entry.name, check=f"n/a: {'lacks ' + ', '.join(lacks) if lacks else unfit}"))
        else:
            runnable.append(entry)
    return runnable, skipped


def exact_check(dev: Device, entry: VariantEntry) -> str:
    """Accumulators of small operands through identity requantization, exact: "ok" or what differs."""
    G, M, K4, OCg = CHECK_SHAPE
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (G, M, 4 * K4), dtype=np.int8)
    weight = rng.integers(-128, 128, (G * OCg, 4 * K4, 1, 1), dtype=np.int8)
    x_zp = 9
    a, weight = small_operands(a, weight, x_zp, rng)
    acc = reference.gemm_acc(a, weight, G) - x_zp * reference.weight_sums(weight).reshape(G, 1, -1)
    got, _ = run_gemm_q8(a, weight, np.ones(G * OCg, np.float32), None, groups=G, x_scale=1.0, x_zp=x_zp,
                         out_scale=1.0, out_zp=0, variant=entry.name, device=dev, guard=True)
    problem = first_mismatch(got, np.clip(acc, -128, 127), 0)
    return "ok" if problem is None else f"FAILED: {problem}"


# -- one shape -------------------------------------------------------------------------------------------


class ShapeRig:
    """A shape's random operands on the device (uploaded once), its output buffer and the NumPy reference
    of sampled rows."""

    def __init__(self, dev: Device, shape: Shape, seed: int) -> None:
        self.dev, self.shape = dev, shape
        self.geom = GemmGeometry(1, shape.M, shape.K // 4, shape.N)
        rng = np.random.default_rng(seed)
        # any bytes are a valid 4W4C matrix and weight words
        self.a_words = np.frombuffer(rng.bytes(self.geom.a_bytes), dtype=np.int32).copy()
        self.w_words = np.frombuffer(rng.bytes(4 * self.geom.K4 * shape.N), dtype=np.int32).copy()
        self.weights = unpack_weights_q8(self.w_words, 1, shape.K, shape.N)[0]  # (K, N) int8
        self.wsum = self.weights.sum(axis=0, dtype=np.int64).astype(np.int32)
        # outputs spread over the int8 range: out_scale ~ 3 sigma of the accumulators / 127
        self.rq: Requant = check_requant(np.ones(shape.N, np.float32), None, shape.N, x_scale=1.0, x_zp=3,
                                         out_scale=3 * math.sqrt(shape.K) * INT8_VAR / 127, out_zp=-2,
                                         activation="none")
        self.rows = np.unique(np.concatenate([rng.integers(0, shape.M, SAMPLED_ROWS), [0, shape.M - 1]]))
        self.inputs = DeviceInputs(dev)
        self.a_buf = self.inputs.upload(self.a_words)
        self.out: Buffer = self.inputs.alloc(self.geom.out_bytes)
        self._want: np.ndarray | None = None

    def step(self, manifest: Manifest, entry: VariantEntry) -> Step:
        return self.inputs.persist(gemm_step(self.dev, manifest, entry, self.geom, self.a_buf, self.w_words,
                                             self.wsum, self.rq, self.out))

    def want(self) -> np.ndarray:
        """The requantized reference of the sampled rows (float64 products are exact: |acc| < 2**53)."""
        if self._want is None:
            M4, K4 = self.geom.M4, self.geom.K4
            blocks = self.a_words.reshape(M4, K4, 4)  # word (m//4, k4, m%4) holds k 4*k4 .. 4*k4+3 of row m
            a = blocks[self.rows // 4, :, self.rows % 4].copy().view(np.int8).reshape(len(self.rows), 4 * K4)
            acc = a.astype(np.float64) @ self.weights.astype(np.float64) - self.rq.x_zp * self.wsum.astype(np.float64)
            rq = self.rq
            self._want = reference.requantize(acc[None], rq.x_scale, rq.w_scales, rq.bias, rq.out_scale, rq.out_zp,
                                              "none")[0]
        return self._want

    def check(self) -> str:
        # the output format (gemm_formats.py): row m is words m*OCg4 .. , byte oc%4 of word oc//4
        words = self.out.read(np.int32).reshape(self.shape.M, self.geom.OCg4)[self.rows]
        got = words.copy().view(np.int8).reshape(len(self.rows), 4 * self.geom.OCg4)[:, : self.shape.N]
        problem = first_mismatch(got, self.want(), 1)
        return "ok" if problem is None else f"FAILED: {problem}"

    def close(self) -> None:
        self.inputs.free()


def time_one(dev: Device, step: Step, target_s: float) -> float:
    """Median GPU seconds of one dispatch over N back-to-back runs in one submit, N sized to ~target_s."""
    one = sum(dev.run([step], timestamps=True) or [1e-3])
    reps = int(min(100, max(3, round(target_s / max(one, 1e-7)))))
    runs = time_steps(dev, [step], reps, warmup=1)
    return float(np.median([sum(r) for r in runs]))


def warm_up(dev: Device, rig: ShapeRig, manifest: Manifest, entries: Sequence[VariantEntry], seconds: float) -> None:
    """Keep the GPU busy for `seconds` with the first variant that runs this shape, ~20 ms per submit."""
    for entry in entries:
        try:
            step = rig.step(manifest, entry)
            one = sum(dev.run([step], timestamps=True) or [1e-3])
            spin_up(dev, [step] * int(min(200, max(1, 0.02 / max(one, 1e-7)))), seconds)
            return
        except Exception as exc:
            log(f"warm-up with {entry.name}: {first_line(exc)}")


# -- the peer --------------------------------------------------------------------------------------------


def torch_row(shapes: Sequence[Shape], enabled: bool) -> tuple[Row, str]:
    """torch._int_mm with B column-major on every shape (kernel time: CUDA graph replay), or why not."""
    row = Row("torch._int_mm (B column-major, CUDA graph)")
    peer = Peer(enabled=enabled, profiler=False)
    if not peer.available:
        row.check = peer.reason
        return row, peer.reason
    import torch  # Peer found it importable with CUDA

    for shape in shapes:
        cell = row.cells.setdefault(shape.name, Cell())
        if shape.M <= 16 or shape.K % 8 or shape.N % 8:
            cell.status = "n/a (torch._int_mm wants M > 16, K and N multiples of 8)"
            continue
        try:
            a = torch.randint(-128, 128, (shape.M, shape.K), dtype=torch.int8, device="cuda")
            b_col = torch.randint(-128, 128, (shape.N, shape.K), dtype=torch.int8, device="cuda").t()
            timing = peer.measure("torch._int_mm", "A row-major, B column-major", partial(torch._int_mm, a, b_col),
                                  warmup=3)
            del a, b_col
            cell.seconds = timing.seconds("kernel")
            cell.status = timing.reason or "no kernel time"
            cell.check = "ok"
        except Exception as exc:
            cell.status = first_line(exc)
        torch.cuda.empty_cache()
    return row, peer.description


# -- the report ------------------------------------------------------------------------------------------


def table(rows: Sequence[Row], shapes: Sequence[Shape]) -> str:
    head = "| variant | exact check | " + " | ".join(f"{s.name} TOPS" for s in shapes) + " |"
    out = [head, "|" + "---|" * (len(shapes) + 2)]
    for row in rows:
        cells = [row.cells.get(s.name, Cell()).text(s) for s in shapes]
        out.append(f"| `{row.name}` | " + " | ".join(c.replace("|", "/") for c in [row.check, *cells]) + " |")
    return "\n".join(out)


def best_lines(rows: Sequence[Row], peer: Row, shapes: Sequence[Shape]) -> list[str]:
    """Per shape: the fastest checked variant, and its ratio to the peer."""
    out = []
    for s in shapes:
        timed: list[tuple[float, str]] = []
        for r in rows:
            cell = r.cells.get(s.name, Cell())
            if cell.seconds is not None and cell.check == "ok" and r.check == "ok":
                timed.append((cell.seconds, r.name))
        if not timed:
            out.append(f"- {s.name}: no variant timed that passed both checks")
            continue
        seconds, name = min(timed)
        line = f"- {s.name}: best `{name}` {s.ops / seconds / 1e12:.1f} TOPS ({seconds * 1e3:.4g} ms)"
        ref = peer.cells.get(s.name, Cell()).seconds
        if ref:
            line += (f"; torch._int_mm {s.ops / ref / 1e12:.1f} TOPS ({ref * 1e3:.4g} ms): "
                     f"ours/peer = {ref / seconds:.2f}x")
        out.append(line)
    return out


def to_json(rows: Sequence[Row], shapes: Sequence[Shape], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "shapes": [vars(s) for s in shapes],
            "rows": [{"name": r.name, "check": r.check,
                      "cells": {k: {"seconds": c.seconds, "status": c.status, "check": c.check,
                                    "tops": None if c.seconds is None else
                                    next(s.ops for s in shapes if s.name == k) / c.seconds / 1e12}
                                for k, c in r.cells.items()}} for r in rows]}


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_gemm_sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, default=150.0, help="start no measurement past this (default 150)")
    p.add_argument("--warm-s", type=float, default=10.0, help="spin the GPU this long first (default 10)")
    p.add_argument("--target-s", type=float, default=0.04, help="GPU seconds per timed block of runs")
    p.add_argument("--shapes", default="", help="comma-separated substrings of shape names to keep")
    p.add_argument("--variants", default="", help="comma-separated substrings of variant names to keep")
    p.add_argument("--emulated", action="store_true", help="time the emulated twins too (slow)")
    p.add_argument("--no-torch", action="store_true", help="leave the torch._int_mm row out")
    p.add_argument("--device", help="device index or name substring (default: $SHADERKIT_DEVICE / first GPU)")
    p.add_argument("--out", type=Path, help="write the table here (markdown) and the numbers beside it (.json)")
    return p.parse_args(argv)


def _keep(spec: str, name: str) -> bool:
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    return not parts or any(s in name for s in parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget_s
    shapes = [s for s in SHAPES if _keep(args.shapes, s.name)]
    nvidia_icd()
    dev = Device(int(args.device) if args.device and args.device.isdigit() else args.device)
    manifest = load_manifest()
    log(dev.describe())
    clocks = [read_clocks("start")]
    peer, peer_desc = torch_row(shapes, not args.no_torch)
    log(f"peer: {peer_desc} [{time.perf_counter() - start:.1f} s]")

    entries, rows_na = tensor_core_variants(manifest, dev, args.emulated)
    entries = [e for e in entries if _keep(args.variants, e.name)]
    rows_na = [r for r in rows_na if _keep(args.variants, r.name)]
    rows = [Row(e.name) for e in entries]
    if not entries:
        log("no tensor-core GEMM variant runs on this device: " + "; ".join(r.check for r in rows_na[:3]))
    for entry, row in zip(entries, rows, strict=True):
        try:
            row.check = exact_check(dev, entry)
        except Exception as exc:
            row.check = f"ERROR: {first_line(exc)}"
        if row.check != "ok":
            log(f"{entry.name}: exact check {row.check}")
    log(f"exact checks done [{time.perf_counter() - start:.1f} s]")

    for i, shape in enumerate(shapes):
        if time.perf_counter() > deadline:
            log(f"budget spent: {shape.name} not timed")
            continue
        try:
            rig = ShapeRig(dev, shape, seed=len(shape.name))
        except Exception as exc:
            log(f"{shape.name}: inputs failed: {first_line(exc)}")
            continue
        try:
            # raise the clocks (the first time) and keep them up after the host-side set-up of the inputs
            warm_s = args.warm_s if i == 0 else 1.0
            warm_up(dev, rig, manifest, entries, warm_s)
            if i == 0:
                clocks.append(read_clocks(f"after {warm_s:.0f} s warm-up"))
            for entry, row in zip(entries, rows, strict=True):
                cell = row.cells.setdefault(shape.name, Cell())
                if time.perf_counter() > deadline:
                    cell.status = "budget"
                    continue
                try:
                    step = rig.step(manifest, entry)
                    rig.out.fill(SENTINEL)
                    cell.seconds = time_one(dev, step, args.target_s)
                    cell.check = rig.check()
                except Exception as exc:
                    cell.status = f"ERROR: {first_line(exc)}"
                    log(f"{entry.name} on {shape.name}: {cell.status}")
                    continue
                if cell.check != "ok":
                    log(f"{entry.name} on {shape.name}: {cell.check}")
        finally:
            rig.close()
        done = [r.cells[shape.name].seconds for r in rows if r.cells.get(shape.name, Cell()).seconds]
        log(f"{shape.name}: {len(done)} of {len(rows)} variants timed [{time.perf_counter() - start:.1f} s]")
    clocks.append(read_clocks("end"))

    everything = rows + rows_na + [peer]
    clock_line = "; ".join(f"{c['when']}: {clock_summary(c)}" for c in clocks)
    text = "\n".join([
        f"# tensor-core int8 GEMM sweep: {dev.info.name}",
        "",
        f"- driver {dev.info.driver_name} {dev.info.driver_info}; peer: {peer_desc}",
        f"- clocks: {clock_line}",
        f"- TOPS = 2*M*K*N / median kernel time (GPU timestamps); a cell notes a failed sampled check; "
        f"exact check: G, M, K4, OCg = {CHECK_SHAPE}",
        f"- {time.perf_counter() - start:.0f} s",
        "",
        table(everything, shapes),
        "",
        *best_lines(rows, peer, shapes),
        "",
    ])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        meta = {"device": dev.info.name, "driver": f"{dev.info.driver_name} {dev.info.driver_info}",
                "peer": peer_desc, "clocks": clocks, "seconds": time.perf_counter() - start}
        args.out.with_suffix(".json").write_text(json.dumps(to_json(everything, shapes, meta), indent=1) + "\n")
    failed = [r.name for r in rows if r.check != "ok" or any(c.check not in ("ok", "") for c in r.cells.values())]
    if failed:
        log(f"{len(failed)} variant(s) failed a check: {', '.join(failed)}")
    return 1 if failed or not entries else 0


if __name__ == "__main__":
    sys.exit(main())
