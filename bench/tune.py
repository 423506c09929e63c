"""`python -m bench tune`: time every variant that fits the device on each shape class conv2d_q8 uses,
and write the device's tuning cache, which conv2d_q8's variant pickers read before their heuristics.

Classes: runtime.families.q8ta_conv2d.op.shape_class of the suite's conv layers (full: ResNet-50 and
MobileNetV2 at 224x224, batch 1; --quick: the small lavapipe set): im2col by input layout and K4, the
GEMM by M, OCg, K4 (powers-of-two buckets) and scale dtype. For each class, every im2col variant that
reads 4w4c and every GEMM variant with float32 scale storage that fits the device is timed (kernel time,
bench/measure.py) on every layer of the class and its output checked against NumPy; the choice is the
variant with the smallest geometric mean of (its time / the layer's best time) among those that passed
on every layer. Only float32-scale GEMM classes are tuned; calls with float16 scales keep the heuristics.

Implementations: conv2d_q8 may also run as another family's single kernel (runtime.core.registry
`implements`): q8ta_igemm's implicit GEMM (every conv) and q8ta_dwconv's direct conv (depthwise). Per
conv shape class (runtime.families.q8ta_igemm.selection.impl_class: kernel, stride, dilation, how the
channels split, power-of-two buckets of channel words, output channels and M) every such variant that
reads 4w4c is timed and checked the same way, against the im2col + GEMM pair (the layer's fastest
im2col plus its fastest GEMM, as timed above); the winner (a variant name, or "im2col+gemm") is
recorded under the op key "conv2d_q8.impl", which q8ta_igemm's implementation reads. The
IGEMM_SPLIT_SWEEP fastest igemm variants of a layer that can split K are timed again at every other
K split of SPLIT_LADDER (`name S=3`), so a class may record a variant at the split it ran fastest at
(the choice {"variant": name, "split_k": "3"}). --batches times every layer at other batch sizes too
(their classes differ by M).

The cache: <build dir>/tuning/<device>.json (build/ or $SHADERKIT_BUILD), keyed by device name, vendor,
driver and the manifest's digest (runtime/core/tuning.py); entries of other op keys or classes are kept.
Invalidate it by rebuilding (`make shaders` changes the digest), a driver update, `rm -r build/tuning`;
SHADERKIT_TUNING=off makes every op ignore it. `python -m bench` shows tuned and heuristic picks per layer.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.clocks import CudaContextHold, Spinner
from bench.clocks import read as read_clocks
from bench.clocks import summary as clock_summary
from bench.kernels import CONV_LAYOUT, SENTINEL, Bench, ConvRig, error_status, picks
from bench.measure import DeviceInputs
from bench.options import Log, log_stderr, matcher, open_device, settle, warm_up
from bench.peer import Peer
from bench.roofline import Roofline
from bench.suite import SUITES, ConvShape, Suite
from runtime.core import tuning
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.families.q8ta_conv2d.op import TUNING_KEYS
from runtime.families.q8ta_dwconv import op as dwconv
from runtime.families.q8ta_igemm.op import igemm_entry, igemm_step, split_counts, split_plan, split_scratch
from runtime.families.q8ta_igemm.selection import IMPL_KEY, PAIR, impl_class, prefer_igemm, split_choice, split_label
from runtime.oplib.conv import ConvGeometry
from runtime.oplib.gemm_q8 import emulated
from runtime.oplib.variants import input_layout_reason

IMPL = "impl"  # the ClassResult role of conv2d_q8's implementations
# igemm variants per layer (the fastest at split_plan's K split) timed at the other splits too
IGEMM_SPLIT_SWEEP = 3
CACHE_KEYS = {**TUNING_KEYS, IMPL: IMPL_KEY}

DEFAULT_REPS = {"full": (5, 1), "quick": (3, 1), "micro": (2, 1)}


@dataclass
class ClassResult:
    """Every variant timed on the layers of one shape class of one pass ("im2col" or "gemm")."""

    role: str
    shape_class: str
    shapes: list[str] = field(default_factory=list)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> layer -> kernel seconds
    failed: dict[str, str] = field(default_factory=dict)  # variant -> first failure
    heuristic: dict[str, str] = field(default_factory=dict)  # layer -> the heuristic's variant
    # what the cache records for a candidate timed under a label of its own (a variant at a forced
    # K split); any other candidate is recorded by its name
    choices: dict[str, tuning.Choice] = field(default_factory=dict)
    choice: str | None = None
    score: float | None = None  # geometric mean of the choice's time / the layer's best

    def choose(self) -> str | None:
        ok = {v: s for v, s in self.seconds.items() if v not in self.failed and set(s) == set(self.shapes)}
        if not ok:
            return None
        best = {layer: min(s[layer] for s in ok.values()) for layer in self.shapes}

        def score(times: dict[str, float]) -> float:
            return math.exp(sum(math.log(times[k] / best[k]) for k in self.shapes) / len(self.shapes))

        self.choice = min(ok, key=lambda v: (score(ok[v]), v))
        self.score = score(ok[self.choice])
        return self.choice

    def total(self, variant: str | None) -> float | None:
        """Summed seconds of `variant` over the class's layers, None where it was not timed on every one."""
        times = self.seconds.get(variant or "", {})
        return sum(times.values()) if variant and set(times) == set(self.shapes) else None

    def heuristic_total(self) -> float | None:
        times = [self.seconds.get(v, {}).get(layer) for layer, v in self.heuristic.items()]
        return None if not times or None in times else sum(t for t in times if t is not None)

    def entry_detail(self) -> dict[str, Any]:
        """What the cache keeps beside the choice, for a person reading it."""
        return {"seconds": self.seconds.get(self.choice or "", {}), "heuristic": self.heuristic,
                "heuristic_seconds": {k: self.seconds.get(v, {}).get(k) for k, v in self.heuristic.items()},
                "score": self.score, "timed": len(self.seconds), "failed": len(self.failed),
                "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}


def _accepts_im2col(entry: VariantEntry) -> bool:
    return input_layout_reason(entry.axes, "4w4c") is None


def _accepts_gemm(entry: VariantEntry) -> bool:
    # emulated cooperative matrices are for tests: never a tuning choice
    return entry.axes.get("dtype") == "float32" and not emulated(entry.axes)


class _Output(Protocol):
    """Where a candidate writes the conv's output: poison it before a run, check it after."""

    def poison(self) -> None: ...

    def check(self) -> str: ...


def _time_candidates(b: Bench, result: ClassResult, layer: str, entries: list[VariantEntry],
                     steps: Callable[[VariantEntry], list[Any]], rig: _Output, label: str | None = None) -> None:
    """Time each entry's first step (its own pass), then run all its steps once and check the conv's
    output; the results go under the entry's name, or `label` (for one entry timed in a forced setting)."""
    for entry in entries:
        if b.missing(entry) is not None:
            continue
        name = label or entry.name
        try:
            seq = steps(entry)
            rig.poison()
            seconds = b.time(seq[:1]).kernel.median
            b.dev.run(seq)
            check = rig.check()
        except Exception as exc:
            result.failed.setdefault(name, error_status(exc))
            continue
        if check.startswith("FAILED"):
            result.failed.setdefault(name, check)
        result.seconds.setdefault(name, {})[layer] = seconds


def _tune_layer(b: Bench, shape: ConvShape, results: dict[tuple[str, str], ClassResult],
                im2cols: list[VariantEntry], gemms: list[VariantEntry]) -> list[str]:
    """Time every candidate of both passes on one layer into the results of its classes."""
    heuristic = picks(b.dev, shape, ("heuristic",))["heuristic"]
    with DeviceInputs(b.dev) as inputs:
        rig = ConvRig(b.dev, b.manifest, shape, inputs)
        per_pass = {role: results.setdefault((role, cls), ClassResult(role, cls))
                    for role, cls in rig.classes().items()}
        heur_im2col, heur_gemm = (b.manifest.variant(n) for n in heuristic)
        for role, name in zip(("im2col", "gemm"), heuristic, strict=True):
            per_pass[role].shapes.append(shape.name)
            per_pass[role].heuristic[shape.name] = name
        # candidates: the variants of the im2col matrix format(s) conv2d_q8 would use here; im2col ones are
        # checked through the whole conv (with the heuristic GEMM, or the heuristic's one of their format)
        _time_candidates(b, per_pass["im2col"], shape.name, [e for e in im2cols if rig.serves(e)],
                         lambda e: [rig.im2col(e), rig.gemm(rig.partner(e, heur_gemm))], rig)
        rig.fill_matrices(heur_im2col)  # the matrices the GEMM candidates read
        _time_candidates(b, per_pass["gemm"], shape.name, [e for e in gemms if rig.serves(e)],
                         lambda e: [rig.gemm(e)], rig)
        impl = _tune_implementations(b, shape, rig, per_pass, results)
    return [r.shape_class for r in per_pass.values()] + [impl]


class _DwOutput:
    """q8ta_dwconv on a rig's depthwise layer: its own weight words and 4c output, checked like the rig's."""

    def __init__(self, b: Bench, rig: ConvRig) -> None:
        self.b, self.rig = b, rig
        self.w_words, self.wsum = dwconv.pack_weights(rig.case.weight)
        g = rig.geom
        self.shape = (g.N, g.C_out, g.H_out, g.W_out)
        self.out = rig.inputs.alloc(4 * dwconv.OUTPUT_LAYOUT.words(self.shape))

    def step(self, entry: VariantEntry) -> Step:
        r = self.rig
        return r.inputs.persist(dwconv.dwconv_step(self.b.dev, self.b.manifest, entry, r.layout, r.geom, r.x_words,
                                                   self.w_words, self.wsum, r.rq, self.out))

    def poison(self) -> None:
        self.out.fill(SENTINEL)

    def check(self) -> str:
        if self.rig.want is None:
            return f"skipped: {self.rig.shape.macs:.2g} MACs is too many for a NumPy check"
        got = dwconv.OUTPUT_LAYOUT.unpack(self.out.read(np.int32), self.shape)
        diff = int(np.abs(got.astype(np.int64) - self.rig.want.astype(np.int64)).max())
        return "ok" if diff <= 1 else f"FAILED: output differs from NumPy by up to {diff}"


def _reads_conv_layout(b: Bench, entry: VariantEntry) -> bool:
    return (input_layout_reason(entry.axes, CONV_LAYOUT) is None and not emulated(entry.axes)
            and b.missing(entry) is None)


def _tune_implementations(b: Bench, shape: ConvShape, rig: ConvRig, per_pass: dict[str, ClassResult],
                          results: dict[tuple[str, str], ClassResult]) -> str:
    """conv2d_q8's implementations on one layer into the result of its impl_class: every q8ta_igemm variant
    (and, on a depthwise layer, every q8ta_dwconv one) against the im2col + GEMM pair, the sum of the
    layer's fastest passing im2col and GEMM."""
    g, layer = rig.geom, shape.name
    result = results.setdefault((IMPL, impl_class(g)), ClassResult(IMPL, impl_class(g)))
    result.shapes.append(layer)
    passes = [min((t[layer] for v, t in r.seconds.items() if v not in r.failed and layer in t), default=None)
              for r in per_pass.values()]
    if None not in passes:
        result.seconds.setdefault(PAIR, {})[layer] = sum(t for t in passes if t is not None)
    depthwise = g.groups == g.C_in == g.C_out
    igemms = [e for e in b.manifest.entries(role="igemm") if _reads_conv_layout(b, e)]
    with ExitStack() as stack:

        def igemm(entry: VariantEntry, splits: int | None = None) -> list[Step]:
            plan = split_plan(b.dev, entry, g, splits)
            scratch = stack.enter_context(split_scratch(b.dev, entry, g, plan))
            return [rig.inputs.persist(igemm_step(b.dev, b.manifest, entry, rig.layout, g, rig.x_words, rig.w_words,
                                                  rig.wsum, rig.rq, rig.out, plan, scratch))]

        _time_candidates(b, result, layer, igemms, igemm, rig)
        for entry, s in _split_sweep(b, result, layer, g, igemms):
            label = split_label(entry.name, s)
            result.choices[label] = split_choice(entry.name, s)
            if s == split_plan(b.dev, entry, g).splits:  # what the variant's own run timed: the class's
                result.seconds.setdefault(label, {})[layer] = result.seconds[entry.name][layer]  # other layers
            else:  # may take that split by rule, or another
                _time_candidates(b, result, layer, [entry], functools.partial(igemm, splits=s), rig, label)
    heuristic = PAIR
    if depthwise:
        dw = _DwOutput(b, rig)
        _time_candidates(b, result, layer, [e for e in b.manifest.entries(role="dwconv") if _reads_conv_layout(b, e)],
                         lambda e: [dw.step(e)], dw)
        with tuning.disabled():  # what conv2d_q8 runs untuned: the depthwise family takes every such call
            case = rig.case
            heuristic = dwconv.run_dwconv2d_q8(case.x, case.weight, case.w_scales, case.bias, device=b.dev,
                                               **{k: v for k, v in case.kwargs.items() if k != "groups"}).variant
    elif prefer_igemm(b.dev, b.manifest, g):
        heuristic = igemm_entry(b.manifest, b.dev, CONV_LAYOUT, g, "float32", None).name
    result.heuristic[layer] = heuristic
    return result.shape_class


def _split_sweep(b: Bench, result: ClassResult, layer: str, g: ConvGeometry, igemms: list[VariantEntry]
                 ) -> list[tuple[VariantEntry, int]]:
    """(variant, K split) pairs of `layer` (of geometry `g`) to keep under `name S=k` labels: the
    IGEMM_SPLIT_SWEEP fastest variants there that passed and can split, at every split of split_counts."""
    counts = {e.name: split_counts(b.dev, e, g) for e in igemms}
    timed = [(result.seconds[e.name][layer], e) for e in igemms
             if e.name not in result.failed and layer in result.seconds.get(e.name, {}) and len(counts[e.name]) > 1]
    return [(entry, s) for _, entry in sorted(timed, key=lambda t: (t[0], t[1].name))[:IGEMM_SPLIT_SWEEP]
            for s in counts[entry.name]]


def at_batches(layers: Sequence[ConvShape], batches: Sequence[int]) -> list[ConvShape]:
    """Every layer at each batch size (the suite's own where it is in `batches`, named as it is)."""
    return [s if n == s.N else dataclasses.replace(s, name=f"{s.name}@b{n}", N=n) for n in batches for s in layers]


def tune(dev: Device, manifest: Manifest, suite: Suite, reps: int, warmup: int, log: Log,
         keep_shape: Callable[[str], bool] = lambda n: True, deadline: float = math.inf,
         spinner: Spinner | None = None, batches: Sequence[int] = (1,)) -> list[ClassResult]:
    """Time every fitting variant on every conv layer of `suite` (at each of `batches`); one result per
    (pass or implementation, shape class)."""
    b = Bench(dev, manifest, Roofline(), Peer(enabled=False), reps, warmup, log, pacing=suite.pacing,
              spinner=spinner)
    results: dict[tuple[str, str], ClassResult] = {}
    im2cols = [e for e in manifest.entries(role="im2col") if _accepts_im2col(e)]
    gemms = [e for e in manifest.entries(role="gemm") if _accepts_gemm(e)]
    layers = [s for s in at_batches(suite.conv, batches) if keep_shape(s.name)]
    for i, shape in enumerate(layers, 1):
        if time.perf_counter() > deadline:
            log(f"tune: time budget spent, {shape.name} and {len(layers) - i} more layer(s) not tuned")
            break
        t0 = time.perf_counter()
        try:
            classes = _tune_layer(b, shape, results, im2cols, gemms)
        except Exception as exc:  # one layer failing must not end the run
            log(f"tune: {shape.name}: {error_status(exc)}")
            continue
        log(f"[tune {i}/{len(layers)}] {shape.name}: {' / '.join(classes)} [{time.perf_counter() - t0:.1f} s]")
    for result in results.values():
        result.choose()
    return list(results.values())


def write_cache(dev: Device, manifest: Manifest, results: Sequence[ClassResult]) -> Path:
    """Record every chosen class into the device's cache (keeping its other entries) and save it."""
    cache = tuning.load(dev, manifest).copy()
    for r in results:
        if r.choice is not None:
            cache.record(CACHE_KEYS[r.role], r.shape_class, r.choices.get(r.choice, r.choice), **r.entry_detail())
    return cache.save()


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.4g}"


def markdown(results: Sequence[ClassResult], meta: dict[str, Any]) -> str:
    """The tuning report: per class, the tuned choice against the heuristics' picks."""
    out = [f"# shaderkit tuning: {meta['device']}", "",
           f"- driver {meta['driver']}; manifest {meta['manifest_digest'][:12]}; suite {meta['suite']}, "
           f"{meta['reps']} timed runs per variant and layer; {meta['date']}",
           f"- cache: `{meta['cache']}`", f"- clocks: {meta.get('clocks', 'n/a')}", "",
           "| pass | shape class | layers | tuned choice | ms (sum) | heuristic pick(s) | ms (sum) | heuristic / tuned "
           "| variants timed | failed |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.role, r.shape_class)):
        tuned, heur = r.total(r.choice), r.heuristic_total()
        gain = f"{heur / tuned:.2f}x" if tuned and heur else "n/a"
        out.append(f"| {r.role} | {r.shape_class} | {', '.join(r.shapes)} | `{r.choice or 'none'}` | {_ms(tuned)} | "
                   f"{', '.join(sorted({f'`{v}`' for v in r.heuristic.values()}))} | {_ms(heur)} | {gain} | "
                   f"{len(r.seconds)} | {len(r.failed)} |")
    failures = sorted({f"`{v}`: {why}" for r in results for v, why in r.failed.items()})
    if failures:
        out += ["", "Failures (never chosen):", *[f"- {f}" for f in failures]]
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the small suite's layers (same as --suite quick)")
    p.add_argument("--suite", choices=sorted(SUITES), default="full", help="whose conv layers (default: full)")
    p.add_argument("--reps", type=int, help="timed runs per variant and layer (default: full 5, quick 3)")
    p.add_argument("--warmup", type=int, help="untimed runs before them (default 1)")
    p.add_argument("--shapes", default="", help="comma-separated substrings: keep layers whose name has one")
    p.add_argument("--device", help="device index or name substring (default: $SHADERKIT_DEVICE / first GPU)")
    p.add_argument("--budget-s", type=float, default=0.0, help="stop starting layers after this many seconds")
    p.add_argument("--warm-s", type=float, help="spin the GPU this long first (default: the suite's)")
    p.add_argument("--out", type=Path, help="also write tune.md and a copy of the cache here")
    p.add_argument("--dry-run", action="store_true", help="measure and report, but leave the cache alone")
    p.add_argument("--batches", default="1", help="comma-separated batch sizes to time every layer at (default 1)")
    args = settle(p, p.parse_args(argv), DEFAULT_REPS)
    try:
        args.batches = [int(n) for n in args.batches.split(",") if n.strip()]
    except ValueError:
        p.error(f"--batches must be comma-separated ints, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        p.error(f"--batches must name batch sizes >= 1, got {args.batches!r}")
    return args


def main(argv: Sequence[str] | None = None, dev: Device | None = None) -> int:
    args = parse_args(argv)
    log: Log = log_stderr
    suite = SUITES[args.suite]
    dev = dev or open_device(args.device)
    manifest = load_manifest()
    start = time.perf_counter()
    deadline = start + args.budget_s if args.budget_s > 0 else math.inf
    hold = CudaContextHold(dev)  # the clock the choices are measured at (bench/clocks.py)
    log(f"CUDA context: {hold.note}")
    spinner = Spinner(dev, manifest) if suite.pacing.spin_s > 0 or (args.warm_s or 0) > 0 else None
    clocks = warm_up(spinner, suite.pacing.warm_s if args.warm_s is None else args.warm_s, log)
    results = tune(dev, manifest, suite, args.reps, args.warmup, log, matcher(args.shapes), deadline, spinner,
                   args.batches)
    clocks.append(read_clocks("end"))
    hold.close()
    if spinner is not None:
        spinner.close()
    key = tuning.CacheKey.of(dev, manifest)
    path = tuning.cache_path(manifest, key.device)
    if not args.dry_run:
        path = write_cache(dev, manifest, results)
    meta = {"device": key.device, "driver": key.driver, "manifest_digest": key.manifest_digest, "suite": args.suite,
            "reps": args.reps, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "cache": f"{path}{' (dry run: not written)' if args.dry_run else ''}",
            "clocks": "; ".join(f"{c['when']}: {clock_summary(c)}" for c in clocks)}
    report = markdown(results, meta)
    print(report, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tune.md").write_text(report)
        if path.exists():
            (args.out / path.name).write_text(path.read_text())
    log(f"tune: {sum(r.choice is not None for r in results)} of {len(results)} classes chosen, cache {meta['cache']} "
        f"({time.perf_counter() - start:.1f} s)")
    return 0 if results else 1
