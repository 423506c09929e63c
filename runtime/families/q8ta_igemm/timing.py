"""The implicit GEMM against conv2d_q8's im2col + GEMM on real conv layers, GPU kernel time.

Every path runs on device-resident inputs (x packed in the caller's layout, by default 4w4c,
conv2d_q8's; packed weights, sums, scales uploaded once) and is timed as `reps` back-to-back calls in
one command buffer, each dispatch bracketed by timestamps (an idle GPU drops its clock between
submits; one submit keeps it up). Timed per layer: every igemm variant that runs on the device (K
split as the op would), the tuning cache's igemm verdict at the K split it records (where the cache
has one, under the label `name S=k`: what conv2d_q8 runs then), the (im2col, GEMM) pair conv2d_q8
picks, and that im2col with the GEMM variant that was fastest in a short screen of all of them. Every
output is checked against the pair's (+-1: both requantize in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from statistics import median
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.select import unrunnable
from runtime.core.timing import spin_up, time_steps
from runtime.families.q8ta_conv2d.op import (
    DEFAULT_LAYOUT,
    conv_geometry,
    gemm_geometry,
    gemm_step,
    im2col_step,
    run_conv2d_q8,
)
from runtime.oplib.gemm_formats import matrix_to_nchw, pack_weights_q8, unpack_output_4c
from runtime.oplib.gemm_q8 import emulated
from runtime.oplib.requant import Requant, check_requant
from runtime.oplib.variants import input_layout_reason

from .op import ROLE, igemm_entry, igemm_step, split_plan, split_scratch
from .selection import serves, split_label, tuned_choice

SCREEN_REPS = 3  # timed calls per GEMM variant in the screen for the fastest one


@dataclass(frozen=True)
class ConvLayer:
    """One int8 conv2d with 'same' padding (K // 2), dilation 1, groups 1."""

    name: str
    N: int
    C_in: int
    H: int
    C_out: int
    K: int = 3
    stride: int = 1

    def describe(self) -> str:
        return f"{self.N}x{self.C_in}x{self.H}x{self.H} -> {self.C_out}, {self.K}x{self.K}/{self.stride}"


def _resnet50_3x3(n: int) -> list[ConvLayer]:
    """ResNet-50 v1.5's 3x3 convs at 224x224 (torchvision: the stride sits in the first 3x3 of a stage)."""
    return [
        ConvLayer(f"rn50.res2.3x3@b{n}", n, 64, 56, 64),
        ConvLayer(f"rn50.res3.3x3s2@b{n}", n, 128, 56, 128, stride=2),
        ConvLayer(f"rn50.res3.3x3@b{n}", n, 128, 28, 128),
        ConvLayer(f"rn50.res4.3x3s2@b{n}", n, 256, 28, 256, stride=2),
        ConvLayer(f"rn50.res4.3x3@b{n}", n, 256, 14, 256),
        ConvLayer(f"rn50.res5.3x3s2@b{n}", n, 512, 14, 512, stride=2),
        ConvLayer(f"rn50.res5.3x3@b{n}", n, 512, 7, 512),
    ]


RESNET50_3X3: tuple[ConvLayer, ...] = (*_resnet50_3x3(1), *_resnet50_3x3(8))
# the same kinds of layer, small enough for a CPU device (lavapipe): seconds, not hours
SMALL_3X3: tuple[ConvLayer, ...] = (
    ConvLayer("small.c64@14", 1, 64, 14, 64),
    ConvLayer("small.c64@14s2", 1, 64, 14, 64, stride=2),
    ConvLayer("small.c128@7", 1, 128, 7, 128),
    ConvLayer("small.c256@4", 1, 256, 4, 256),
    ConvLayer("small.c64@8b4", 4, 64, 8, 64),
)


def layer_call(layer: ConvLayer, seed: int = 0) -> dict[str, Any]:
    """conv2d_q8 arguments of a layer: random int8 x and weights, scales that keep outputs off saturation."""
    rng = np.random.default_rng(seed)
    # an accumulator of k products of uniform int8 values spreads over sqrt(k) * 74^2 (74: their deviation)
    spread = np.sqrt(layer.C_in * layer.K * layer.K) * 74.0**2 * 0.05 * 0.0105
    return {
        "x": rng.integers(-128, 128, (layer.N, layer.C_in, layer.H, layer.H), dtype=np.int8),
        "weight": rng.integers(-128, 128, (layer.C_out, layer.C_in, layer.K, layer.K), dtype=np.int8),
        "w_scales": rng.uniform(0.001, 0.02, layer.C_out).astype(np.float32),
        "bias": rng.standard_normal(layer.C_out).astype(np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": float(3 * spread / 127), "out_zp": -2,
        "stride": layer.stride, "padding": layer.K // 2, "activation": "relu",
    }


@dataclass
class LayerTiming:
    """Median kernel seconds of each path on one layer, and what failed."""

    layer: ConvLayer
    igemm: dict[str, float] = field(default_factory=dict)  # variant (or `name S=k`) -> seconds
    # what conv2d_q8's implicit GEMM runs: the tuning cache's verdict (`name S=k` where it records a K
    # split), else what igemm_conv2d_q8 picks with no variant forced
    igemm_pick: str = ""
    splits: dict[str, int] = field(default_factory=dict)  # variant (or `name S=k`) -> S
    pair: tuple[str, str] = ("", "")  # conv2d_q8's (im2col, GEMM)
    pair_s: float | None = None
    best_gemm: str = ""
    best_pair_s: float | None = None
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def best_igemm(self) -> tuple[str, float] | None:
        return min(self.igemm.items(), key=lambda kv: kv[1]) if self.igemm else None


class _Rig:
    """One layer's inputs on the device and a reference output (conv2d_q8's own)."""

    def __init__(self, dev: Device, manifest: Manifest, layer: ConvLayer, stack: ExitStack,
                 layout: str = DEFAULT_LAYOUT) -> None:
        self.dev, self.manifest, self.stack = dev, manifest, stack
        call = layer_call(layer)
        self.layout = Layout.from_dict(layout, manifest.layouts[layout])
        self.geom = conv_geometry(call["x"].shape, call["weight"], stride=layer.stride, padding=layer.K // 2,
                                  dilation=1, groups=1)
        self.rq: Requant = check_requant(call["w_scales"], call["bias"], layer.C_out, x_scale=call["x_scale"],
                                         x_zp=call["x_zp"], out_scale=call["out_scale"], out_zp=call["out_zp"],
                                         activation=call["activation"])
        reference = run_conv2d_q8(**call, input_layout=layout, device=dev)
        self.pair = (reference.im2col_variant, reference.gemm_variant)
        self.want = reference.output
        self.w, self.wsum = pack_weights_q8(call["weight"], 1)
        self.x = self.layout.pack(call["x"])
        self.gg = gemm_geometry(self.geom)
        self.a = self.own(dev.alloc(self.gg.a_bytes))
        self.out = self.own(dev.alloc(self.gg.out_bytes))
        self._uploaded: dict[int, tuple[np.ndarray, Buffer]] = {}

    def own(self, buf: Buffer) -> Buffer:
        return self.stack.enter_context(buf)

    def upload(self, array: np.ndarray) -> Buffer:
        """`array` on the device, uploaded once however many steps bind it (keyed by identity, the array kept
        alive so its id is not reused)."""
        if id(array) not in self._uploaded:
            self._uploaded[id(array)] = (array, self.own(self.dev.upload(array)))
        return self._uploaded[id(array)][1]

    def resident(self, step: Step) -> Step:
        """The step with every host array it binds on the device (x, weights, scales, metadata, stand-ins)."""
        buffers = {k: self.upload(v) if isinstance(v, np.ndarray) else v for k, v in step.buffers.items()}
        return Step(step.pipeline, buffers, step.push, step.groups)

    def igemm(self, entry: VariantEntry, split_k: int | None = None) -> tuple[Step, int]:
        plan = split_plan(self.dev, entry, self.geom, split_k)
        scratch = self.stack.enter_context(split_scratch(self.dev, entry, self.geom, plan))
        step = igemm_step(self.dev, self.manifest, entry, self.layout, self.geom, self.x, self.w, self.wsum,
                          self.rq, self.out, plan, scratch)
        return self.resident(step), plan.splits

    def pair_steps(self, im2col: str, gemm: str) -> list[Step]:
        m = self.manifest
        return [self.resident(im2col_step(self.dev, m.variant(im2col), self.layout, self.geom, self.x,
                                          self.rq.x_zp, self.a)),
                self.resident(gemm_step(self.dev, m, m.variant(gemm), self.gg, self.a, self.w, self.wsum, self.rq,
                                        self.out))]

    def check(self) -> str | None:
        g = self.geom
        got = matrix_to_nchw(unpack_output_4c(self.out.read(np.int32), 1, g.M, g.OCg), g.N, g.H_out, g.W_out)
        diff = int(np.abs(got.astype(np.int64) - self.want.astype(np.int64)).max())
        return None if diff <= 1 else f"output differs from conv2d_q8's by up to {diff}"


def kernel_seconds(dev: Device, steps: Sequence[Step], reps: int) -> float:
    """Median over `reps` back-to-back calls (one submit) of the summed dispatch times of one call."""
    return median(sum(run) for run in time_steps(dev, steps, reps, warmup=0))


def runnable_variants(dev: Device, manifest: Manifest, role: str) -> list[VariantEntry]:
    """Variants of `role` this device runs (features, limits), emulated tensor cores left out."""
    return [e for e in manifest.entries(role=role) if unrunnable(e, dev) is None
            and not emulated(e.axes)]


def time_layer(dev: Device, layer: ConvLayer, reps: int, *, screen: bool = True, rounds: int = 1,
               keep: Callable[[str], bool] = lambda name: True, layout: str = DEFAULT_LAYOUT) -> LayerTiming:
    """Every path on one layer (the module's doc says which), each output checked once; with `rounds` > 1
    the paths are timed round-robin that many times and each keeps its fastest round (a shared or busy
    device drifts; interleaving spreads that over all of them). Failures are recorded, not raised."""
    manifest = load_manifest()
    t = LayerTiming(layer)
    with ExitStack() as stack:
        rig = _Rig(dev, manifest, layer, stack, layout)
        t.pair = rig.pair
        t.igemm_pick = igemm_entry(manifest, dev, layout, rig.geom, "float32", None).name
        paths: dict[str, Callable[[], list[Step]]] = {
            e.name: partial(_igemm, t, rig, e, e.name) for e in runnable_variants(dev, manifest, ROLE)
            if keep(e.name) and input_layout_reason(e.axes, layout) is None}
        verdict = tuned_choice(dev, manifest, rig.geom)
        if verdict is not None and serves(dev, manifest, verdict[0], layout):
            name, split = verdict
            t.igemm_pick = name if split is None else split_label(name, split)
            paths.setdefault(t.igemm_pick, partial(_igemm, t, rig, manifest.variant(name), t.igemm_pick, split))
        paths[PAIR] = partial(rig.pair_steps, *t.pair)
        if screen:  # a few calls of every GEMM after the pair's im2col; the fastest one joins the paths
            screened = _time_all(t, rig, {e.name: partial(rig.pair_steps, t.pair[0], e.name)
                                          for e in runnable_variants(dev, manifest, "gemm")}, SCREEN_REPS, 1)
            if screened:
                t.best_gemm = min(screened, key=lambda n: screened[n])
                paths[BEST_PAIR] = partial(rig.pair_steps, t.pair[0], t.best_gemm)
        timed = _time_all(t, rig, paths, reps, rounds)
    t.pair_s, t.best_pair_s = timed.pop(PAIR, None), timed.pop(BEST_PAIR, None)
    t.igemm = timed
    return t


PAIR, BEST_PAIR = "im2col+gemm", "im2col+best-gemm"


def _igemm(t: LayerTiming, rig: _Rig, entry: VariantEntry, label: str, split_k: int | None = None) -> list[Step]:
    step, t.splits[label] = rig.igemm(entry, split_k)
    return [step]


def _time_all(t: LayerTiming, rig: _Rig, paths: Mapping[str, Callable[[], list[Step]]], reps: int,
              rounds: int) -> dict[str, float]:
    """Build and check every path once (a failure is recorded in t.failed), then time the good ones
    round-robin: each path's fastest round."""
    built = {}
    for name, make in paths.items():
        try:
            seq = make()
            rig.out.fill(0x7B)  # a path that writes nothing cannot pass
            rig.dev.run(seq)
            problem = rig.check()
        except Exception as exc:  # one path failing must not end the run
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        if problem:
            t.failed[name] = problem
        else:
            built[name] = seq
    best: dict[str, float] = {}
    for _ in range(max(1, rounds)):
        for name, seq in built.items():
            seconds = kernel_seconds(rig.dev, seq, reps)
            best[name] = min(best.get(name, seconds), seconds)
    return best


def warm_up(dev: Device, layer: ConvLayer, seconds: float) -> None:
    """Keep the device busy for `seconds` with the igemm of `layer` (an idle GPU sits at a low clock)."""
    if seconds <= 0:
        return
    manifest = load_manifest()
    with ExitStack() as stack:
        rig = _Rig(dev, manifest, layer, stack)
        step, _ = rig.igemm(igemm_entry(manifest, dev, DEFAULT_LAYOUT, rig.geom, "float32", None))
        spin_up(dev, [step] * 64, seconds)
