"""Soak test of the main op: many conv2d_q8 calls with random small shapes, checked against the NumPy reference.

Usage: ``python -m runtime.tools.soak --calls N [--seed S] [--warmup W] [--max-rss-growth-mb MB]``

Every call draws a case the way the family's strategies do (dense / grouped / depthwise channels, kernel
1..7, stride, padding, dilation, every input layout, relu, zero points and scales at the extremes,
float32 or float16 scales), runs it through the op on the default device with the variants picked
automatically, and compares it with ``runtime.reference.conv2d_q8_reference`` (+-1).

A warm-up first fills the caches (every GEMM variant the device runs, with and without relu, every
im2col variant with every layout it reads, then `--warmup` random cases). Resident memory
(``/proc/self/statm``) and the device's live Vulkan objects
(:meth:`runtime.device.Device.live_objects`) are taken after the warm-up and at the end.
Pipelines, shader modules and pipeline layouts are caches: they may grow only by the (variant,
specialization) combinations first seen after the warm-up; every other count must stay flat.

Exit status: 0 when every result matched, no call raised, RSS grew by at most the limit and no object
count grew beyond that; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from runtime.core.device import Device, default_device
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d.checks import materialize
from runtime.families.q8ta_conv2d.im2col import plan_call, spec_for
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference
from runtime.oplib.conv import layout_of
from runtime.tools.check import repro_command
from runtime.tools.memcheck import rss_mib

# Cached objects: growth is fine while new (variant, spec) keys explain it.
CACHES = ("pipelines", "shader_modules", "pipeline_layouts")


# -- random cases (numpy twins of the family's Hypothesis strategies) -----------------
def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _spatial_axis(rng: np.random.Generator, max_size: int = 11) -> dict[str, int]:
    """size, kernel, stride, padding, dilation with a non-empty output."""
    k = int(_pick(rng, [1, 1, 2, 3, 3, 4, 5, 7]))
    d = int(_pick(rng, [1, 1, 1, 2, 3])) if k > 1 else 1
    span = d * (k - 1) + 1
    size = int(rng.integers(1, max_size + 1))
    min_pad = max(0, -(-(span - size) // 2))
    return {"size": size, "k": k, "s": int(rng.integers(1, 5)), "p": int(rng.integers(min_pad, min_pad + 3)), "d": d}


def _channel_groups(rng: np.random.Generator) -> dict[str, int]:
    kind = _pick(rng, ["dense", "dense", "grouped", "depthwise"])
    if kind == "dense":
        return {"C_in": int(rng.integers(1, 14)), "C_out": int(rng.integers(1, 14)), "groups": 1}
    if kind == "depthwise":
        c = int(rng.integers(1, 11))
        return {"C_in": c, "C_out": c * int(_pick(rng, [1, 1, 2])), "groups": c}
    g = int(rng.integers(2, 5))
    return {"C_in": g * int(rng.integers(1, 6)), "C_out": g * int(rng.integers(1, 6)), "groups": g}


def _zero_point(rng: np.random.Generator) -> int:
    return int(_pick(rng, [-128, 127, 0])) if rng.random() < 0.5 else int(rng.integers(-128, 128))


def random_case(rng: np.random.Generator, layouts: Sequence[str]) -> dict[str, Any]:
    """One JSON-able case in the format of runtime.verify.materialize (+ layout and scale dtype)."""
    h, w = _spatial_axis(rng), _spatial_axis(rng)
    x_scale = float(_pick(rng, [1e-4, 0.05, 7.5])) if rng.random() < 0.5 else float(rng.uniform(1e-3, 2.0))
    return {
        "N": int(_pick(rng, [1, 1, 2, 3])),
        **_channel_groups(rng),
        "H": h["size"], "W": w["size"], "KH": h["k"], "KW": w["k"],
        "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]], "dilation": [h["d"], w["d"]],
        "x_zp": _zero_point(rng),
        "out_zp": _zero_point(rng),
        "x_scale": x_scale,
        "w_scale_range": list(_pick(rng, [(0.001, 0.02), (1e-5, 1e-4), (0.5, 4.0)])),
        "out_scale_factor": float(_pick(rng, [0.01, 0.3, 1.0, 1.0, 1.0, 2.5, 300.0])),
        "bias": bool(rng.random() < 0.5),
        "bias_scale": float(_pick(rng, [0.0, 1.0, 50.0])),
        "activation": str(_pick(rng, ["none", "relu"])),
        "x_values": str(_pick(rng, ["random", "random", "random", "extremes", "min", "max"])),
        "w_values": str(_pick(rng, ["random", "random", "random", "extremes", "min", "max"])),
        "layout": str(_pick(rng, sorted(layouts))),
        "scale_dtype": "float16" if rng.random() < 0.25 else "float32",
        "seed": int(rng.integers(0, 2**31 - 1)),
    }


# -- one call --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    ok: bool
    keys: set[tuple[str, str]]  # (variant, spec) pipeline keys the call used
    problem: str = ""


def run_case(case: dict[str, Any], device: Device, gemm_variant: str | None = None,
             im2col_variant: str | None = None) -> Outcome:
    """Run one case on the device and compare with the reference (+-1)."""
    inp = materialize(case)
    run = run_conv2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, input_layout=case["layout"], device=device,
                        gemm_variant=gemm_variant, im2col_variant=im2col_variant, **inp.kwargs)
    # an im2col pipeline is specialized per layout and per path / unrolled sizes (q8ta_conv2d.im2col.spec_for)
    im2col = load_manifest().variant(run.im2col_variant)
    layout = layout_of(load_manifest(), case["layout"])
    spec = spec_for(im2col, plan_call(device, im2col, layout, run.geometry), layout, run.geometry)
    keys = {(run.im2col_variant, f"layout={case['layout']} {sorted(spec.items())}"),
            (run.gemm_variant, f"act={case['activation']}")}
    want, _ = conv2d_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.kwargs)
    diff = np.abs(run.output.astype(np.int16) - want.astype(np.int16))
    if run.output.shape != want.shape:
        return Outcome(False, keys, f"output shape {run.output.shape}, reference {want.shape}")
    if diff.max(initial=0) > 1:
        bad = tuple(int(i) for i in np.argwhere(diff > 1)[0])
        return Outcome(False, keys, (
            f"{int((diff > 1).sum())} of {diff.size} elements off by more than 1 "
            f"({run.im2col_variant} + {run.gemm_variant}); first at {bad}: got {int(run.output[bad])}, "
            f"expected {int(want[bad])}"
        ))
    return Outcome(True, keys)


# -- the soak --------------------------------------------------------------------------------------
@dataclass
class SoakResult:
    calls: int
    mismatches: int
    errors: int
    rss_start_mib: float
    rss_end_mib: float
    objects_start: dict[str, int]
    objects_end: dict[str, int]
    new_keys: int
    new_variants: int
    seconds: float
    failures: list[str] = field(default_factory=list)

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_end_mib - self.rss_start_mib

    def object_growth(self) -> dict[str, int]:
        """Growth of each count beyond what new cache keys explain (0 when flat)."""
        allowed = {"pipelines": self.new_keys, "shader_modules": self.new_variants,
                   "pipeline_layouts": self.new_variants}
        # tracked = fixed objects + buffers + pools + modules + 2 per pipeline layout + pipelines
        allowed["tracked"] = self.new_keys + self.new_variants * 3
        out = {}
        for kind, end in self.objects_end.items():
            grew = end - self.objects_start.get(kind, 0) - allowed.get(kind, 0)
            out[kind] = max(0, grew)
        return out


def soak(
    calls: int, seed: int = 0, *, warmup: int = 40, device: Device | None = None, out: TextIO | None = None,
    max_failures_shown: int = 5,
) -> SoakResult:
    """Warm up, then run `calls` random cases; progress and failures go to `out` (default stdout)."""
    out = out or sys.stdout
    dev = device if device is not None else default_device()
    layouts = sorted(load_manifest().layouts)
    rng = np.random.default_rng(seed)
    keys: set[tuple[str, str]] = set()
    failures: list[str] = []
    mismatches = errors = 0

    def one(case: dict[str, Any], count: bool, gemm_variant: str | None = None,
            im2col_variant: str | None = None) -> None:
        nonlocal mismatches, errors
        try:
            outcome = run_case(case, dev, gemm_variant, im2col_variant)
        except Exception as exc:  # a raising call is a failure to report, not a reason to stop
            outcome = Outcome(False, set(), f"raised {type(exc).__name__}: {exc}")
            errors += int(count)
        else:
            mismatches += int(count and not outcome.ok)
        keys.update(outcome.keys)
        if outcome.ok or not count:
            return
        failures.append(outcome.problem)
        if len(failures) <= max_failures_shown:
            gemm = next((v for v, s in outcome.keys if s.startswith("act=")), None)
            rerun = repro_command("conv", gemm, case) if gemm else f"case {json.dumps(case, sort_keys=True)}"
            print(f"  FAIL: {outcome.problem}\n    rerun: {rerun}", file=out)

    # Warm-up fills the caches (pipelines, and the driver's compiled code in RSS): every GEMM variant that
    # runs here with and without relu, every im2col variant with every layout it reads; then random cases.
    t_warm = time.perf_counter()
    warm_rng = np.random.default_rng([seed, 1])
    manifest = load_manifest()
    for name, entry in sorted(manifest.variants.items()):
        if entry.role != "gemm" or dev.supports(entry.features):
            continue
        for activation in ("none", "relu"):
            case = dict(random_case(warm_rng, layouts), activation=activation,
                        scale_dtype=entry.axes.get("dtype", "float32"))
            one(case, False, name)  # errors ignored: e.g. a variant this device cannot run for other reasons
    for name, entry in sorted(manifest.variants.items()):
        if entry.role != "im2col" or dev.supports(entry.features):
            continue
        reads = entry.axes.get("input_layout")
        for layout in layouts if reads in (None, "generic") else [reads]:
            one(dict(random_case(warm_rng, layouts), layout=layout), False, im2col_variant=name)
    for layout in layouts:
        for activation in ("none", "relu"):
            for scale_dtype in ("float32", "float16"):
                case = random_case(warm_rng, layouts)
                one(dict(case, layout=layout, activation=activation, scale_dtype=scale_dtype), count=False)
    for _ in range(warmup):
        one(random_case(warm_rng, layouts), count=False)

    keys_start, variants_start = set(keys), {v for v, _ in keys}
    rss_start, objects_start = rss_mib(), dev.live_objects()
    print(f"device:  {dev.info.name}", file=out)
    print(f"warm-up: {time.perf_counter() - t_warm:.1f} s, {len(keys)} pipeline keys", file=out)
    print(f"start:   rss {rss_start:8.1f} MiB  objects {_fmt(objects_start)}", file=out)
    t0 = time.perf_counter()
    step = max(1, calls // 10)
    for i in range(1, calls + 1):
        one(random_case(rng, layouts), count=True)
        if i % step == 0 or i == calls:
            print(f"  {i:6d}/{calls} calls  {time.perf_counter() - t0:7.1f} s  rss {rss_mib():8.1f} MiB  "
                  f"mismatches {mismatches}  errors {errors}", file=out, flush=True)
    seconds = time.perf_counter() - t0
    rss_end, objects_end = rss_mib(), dev.live_objects()
    print(f"end:     rss {rss_end:8.1f} MiB  objects {_fmt(objects_end)}", file=out)
    return SoakResult(
        calls=calls, mismatches=mismatches, errors=errors, rss_start_mib=rss_start, rss_end_mib=rss_end,
        objects_start=objects_start, objects_end=objects_end, new_keys=len(keys - keys_start),
        new_variants=len({v for v, _ in keys} - variants_start), seconds=seconds, failures=failures,
    )


def _fmt(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items())


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    doc = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m runtime.tools.soak", description=doc)
    parser.add_argument("--calls", type=int, default=2000, help="number of checked calls (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=40, help="random calls before the start figures")
    parser.add_argument("--max-rss-growth-mb", type=float, default=16.0)
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error(f"--calls must be >= 1, got {args.calls}")
    out = out or sys.stdout
    result = soak(args.calls, args.seed, warmup=args.warmup, out=out)
    growth = {k: v for k, v in result.object_growth().items() if v}
    print(f"calls:       {result.calls} in {result.seconds:.1f} s ({result.seconds / result.calls * 1e3:.1f} ms/call)",
          file=out)
    print(f"mismatches:  {result.mismatches}", file=out)
    print(f"errors:      {result.errors}", file=out)
    print(f"rss growth:  {result.rss_growth_mib:+.1f} MiB (limit {args.max_rss_growth_mb} MiB)", file=out)
    print(f"new pipeline keys after warm-up: {result.new_keys} ({result.new_variants} new variants)", file=out)
    print(f"object growth: {json.dumps(growth) if growth else 'none'}", file=out)
    failed = (result.mismatches or result.errors or growth
              or result.rss_growth_mib > args.max_rss_growth_mb)
    print("SOAK FAILED" if failed else "SOAK OK", file=out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
