"""What the staged-path timing scripts share (this folder's and ../im2col_stem_pad/'s): the device held
at its working clock, the copy peak they report against, a bench shape's input and geometry, and one
timed call of a case as the host plans it at the time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

import runtime.families.q8ta_conv2d.im2col as host
from bench.clocks import CudaContextHold
from bench.kernels import _layout
from bench.measure import summarize
from bench.roofline import measure_copy
from bench.suite import IM2COL_BIG, ConvShape
from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.timing import spin_up, time_steps
from runtime.oplib.conv import ConvGeometry, conv_geometry


def open_run(what: str) -> tuple[Device, Manifest, float, CudaContextHold]:
    """The device, the build's manifest, the copy peak (GB/s, the best bench_copy probe on 256 MiB after
    10 s of spin-up) and the CUDA context that keeps the SM clock up between dispatches (bench/clocks.py)."""
    dev = Device()
    manifest = load_manifest()
    hold = CudaContextHold(dev)
    print(f"# {dev.info.name}; {what}, median of 20 back-to-back calls; CUDA context {hold.note}", flush=True)
    copy = max(p.value for p in measure_copy(dev, manifest, 256 << 20, 20, 3, print, spin_s=10.0) if p.value)
    print(f"copy peak {copy:.0f} GB/s", flush=True)
    return dev, manifest, copy, hold


def conv_input(shape: ConvShape) -> tuple[np.ndarray, ConvGeometry]:
    """Random int8 input of the shape and its conv geometry (dilation 1)."""
    x = np.random.default_rng(1).integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
    geom = conv_geometry(x.shape, (shape.groups, shape.C_in // shape.groups, shape.K, shape.K),
                         stride=shape.stride, padding=shape.padding, dilation=1, groups=shape.groups)
    return x, geom

T = TypeVar("T")


@dataclass(frozen=True)
class Case:
    """One variant on one shape: its input packed and on the device, and the matrix buffer."""

    shape: ConvShape
    geom: ConvGeometry
    entry: VariantEntry
    layout: Layout
    x_words: np.ndarray
    x: Buffer
    out: Buffer
    nbytes: int  # of the native matrix

    def percent_of_copy(self, seconds: float, copy_gbps: float) -> float:
        return 100 * (self.x_words.nbytes + self.nbytes) / seconds / 1e9 / copy_gbps


def cases(dev: Device, manifest: Manifest, names: Sequence[str], shapes: Sequence[ConvShape],
          filters: Sequence[str]) -> Iterator[Case]:
    """Each named variant on each shape whose name has one of `filters` (all without filters)."""
    for shape in shapes:
        if filters and not any(f in shape.name for f in filters):
            continue
        x, geom = conv_input(shape)
        nbytes = host.matrix_bytes(geom, "native")
        with dev.alloc(nbytes) as out:
            for name in names:
                entry = manifest.variants[name]
                layout = _layout(manifest, entry)
                x_words = layout.pack(x)
                with dev.upload(x_words) as xb:
                    yield Case(shape, geom, entry, layout, x_words, xb, out, nbytes)


def time_case(dev: Device, case: Case, copy: float) -> tuple[host.Im2colPlan, float, float, bytes]:
    """`case` as host.plan_call plans it now: (plan, median seconds of 20 back-to-back calls after 3,
    % of copy, the matrix's bytes)."""
    case.out.fill(0x5A)  # a plan that skips part of the matrix then shows as a different output
    pl = host.plan_call(dev, case.entry, case.layout, case.geom)
    step = host.im2col_step(dev, case.entry, case.layout, case.geom, case.x, 5, case.out)
    spin_up(dev, [step], 0.5)
    t = summarize([r[0] for r in time_steps(dev, [step], 20, 3)]).median
    return pl, t, case.percent_of_copy(t, copy), case.out.read(np.uint8)[:case.nbytes].tobytes()


StageRule = Callable[[ConvGeometry, int, int, int], "host.StagePlan | None"]


def sweep_stage_plans(what: str, values: Sequence[T], plan_for: Callable[[T], StageRule], filters: Sequence[str],
                      variant: Callable[[str], bool]) -> Iterator[tuple[Case, T, host.Im2colPlan, float, float, bool]]:
    """The big im2col shapes (those whose name has one of `filters`) on the native 256-thread variants
    `variant` keeps, each timed with host.stage_plan replaced by plan_for(value), value by value:
    (case, value, plan, seconds, % of copy, output the same as the case's first)."""
    dev, manifest, copy, _hold = open_run(what)
    rule = host.stage_plan
    names = [n for n in manifest.names(role="im2col") if "native" in n and "wg256" in n and variant(n)]
    try:
        for c in cases(dev, manifest, names, IM2COL_BIG, filters):
            ref = None
            for value in values:
                vars(host)["stage_plan"] = plan_for(value)
                pl, t, pct, got = time_case(dev, c, copy)
                ref = ref or got
                yield c, value, pl, t, pct, got == ref
    finally:
        vars(host)["stage_plan"] = rule
