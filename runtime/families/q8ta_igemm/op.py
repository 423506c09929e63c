"""Host side of the implicit-GEMM int8 conv2d: check arguments, pick the variant, plan the K split,
pack the weights, dispatch once.

The op takes conv2d_q8's arguments (plus `variant` and the `split_k` knob) and returns the same result:
the weights are packed as conv2d_q8's GEMM packs them (runtime/oplib/gemm_formats.py
pack_weights_q8; for a variant that loads 16 bytes at a time, 4 k-words of a column side by side:
entry_weights), the output is the GEMM's [G][M][OCg4] words, and x is handled as conv2d_q8 handles
it (`int8_input`: int8 NCHW packed in `input_layout`, default "4w4c", or a runtime.Packed as it is).
What it leaves out is the im2col matrix: the shader gathers its A tiles from x
(templates/include/conv_gather.glsl.j2; the interface: templates/include/igemm_q8.glsl.j2). The
result goes where conv2d_q8's goes (`packed`, runtime/oplib/conv_output.py): for groups == 1 the
output buffer is the 4c layout of (N, C_out, H_out, W_out) and may stay on the device as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.families.q8ta_conv2d.op import conv_geometry
from runtime.oplib import validate
from runtime.oplib.conv import ConvGeometry, check_limit, check_limits, conv_push, device_of, int8_input, workgroups
from runtime.oplib.conv_output import ConvResult, conv_placement, deliver_gemm
from runtime.oplib.elementwise import run_into
from runtime.oplib.gemm_formats import interleave_k_words, pack_weights_q8
from runtime.oplib.gemm_q8 import GemmGeometry, emulated
from runtime.oplib.requant import Requant, check_requant, check_storage, requant_bindings, requant_push, scale_dtype
from runtime.oplib.variants import layout_scale_entry, runnable

ROLE = "igemm"
# output tiles below which a GPU is assumed to have idle compute units (an H100 has 132 SMs, and a
# workgroup of these templates leaves room for a second one on each): K is then split to make more;
# fewer for workgroups of more than K_SPLIT_THREADS / K_SPLIT_FILL invocations, which fill it sooner
# (the 64 x 64 block of 8 subgroups on ResNet-50's 3x3 layers at batch 8, where S changed: 1.09-1.30x
# faster at this S than at 256 workgroups' on an H200; bench/results/2026-12-03_nvidia-h200/experiments/
# igemm_loads)
K_SPLIT_FILL = 256
K_SPLIT_THREADS = 256 * 128
# a split sums at least this many K steps (fewer and its partial-sum traffic outweighs its work)
MIN_STEPS_PER_SPLIT = 4
MAX_SPLITS = 16
# the split counts `bench tune` times besides split_plan's own (split_counts): one wave of workgroups
# more or fewer changes the time by up to 1.24x where the rule's fill lands between waves
SPLIT_LADDER = (1, 2, 3, 4, 6, 8, 12, 16)
# The tensor-core block preferred by conv size (without a tuning cache's verdict), after the sweeps of
# bench/results/2026-12-03_nvidia-h200/experiments/igemm_loads on ResNet-50's 3x3 layers (H200):
# below SMALL_CONV_MACS multiply-adds the smallest block (most workgroups: every batch-1 layer, 116 M
# each, ran fastest on 32 x 32, 1.04-1.17x faster than on 32 x 64); below BIG_CONV_OUTPUTS outputs
# (pixels x output channels x groups) the block nearest MID_BLOCK_AREA (at batch 8, 925 M each, 32 x 64
# was the fastest or within 1 % at the op's own K split; no conv between the two sizes was timed);
# from there the largest block that fits (2048 workgroups of 32 x 64 fill the GPU many times over; no
# conv this large was timed)
SMALL_CONV_MACS = 1 << 28
BIG_CONV_OUTPUTS = 2048 * 32 * 64
MID_BLOCK_AREA = 32 * 64


@dataclass
class IgemmRun(ConvResult):
    """One execution, with what tests and the bench want besides the output."""

    result: np.ndarray | Packed  # what the op returns: int8 (N, C_out, H_out, W_out), or a 4c Packed
    variant: str
    geometry: ConvGeometry
    splits: int  # S: workgroups that share each output tile's K range
    seconds: list[float] | None = None  # GPU time of the dispatch (timestamps=True)


@dataclass(frozen=True)
class SplitPlan:
    """How K is cut: S splits of `per_split` words each (the last one may be shorter)."""

    splits: int
    per_split: int


def _block(entry: VariantEntry) -> tuple[int, int]:
    """Output pixels x output channels one workgroup covers (the template states them)."""
    return int(entry.declared["DISPATCH_BLOCK_M"]), int(entry.declared["DISPATCH_BLOCK_N"])


def _tiles(entry: VariantEntry, geom: ConvGeometry) -> int:
    """Output tiles of this conv (workgroups of one split; each has one arrival count)."""
    bm, bn = _block(entry)
    return -(-geom.M // bm) * -(-geom.OCg // bn) * geom.groups


def _slice_bytes(geom: ConvGeometry) -> int:
    """One split's partial sums: [G][M][OCg4] ivec4."""
    return 16 * geom.groups * geom.M * geom.OCg4


def _room(dev: Device, geom: ConvGeometry) -> int:
    """Splits whose partial sums one buffer holds (at least 1)."""
    return max(1, int(dev.info.limits["maxStorageBufferRange"]) // _slice_bytes(geom))


def k_step(entry: VariantEntry) -> int:
    """The K step (words) of a template that can split K; 0 for one that cannot."""
    return int(entry.declared.get("IGEMM_K_STEP", 0))


def gather_facts(entry: VariantEntry, geom: ConvGeometry) -> int | None:
    """The GATHER_FACTS specialization of a gathering variant (templates/include/conv_gather.glsl.j2):
    bit 0 every K step lies in one tap, bit 1 every group starts on a channel word; None for a
    variant without it, or one whose K step is not declared (its gather then tests at run time)."""
    step = k_step(entry)
    if entry.spec_constant("GATHER_FACTS") is None or step <= 0:
        return None
    return int(geom.Cg4 % step == 0) | int(geom.groups == 1 or geom.Cg % 4 == 0) << 1


def igemm_entry(manifest: Manifest, dev: Device, layout: str, geom: ConvGeometry, scales: str,
                forced: str | None) -> VariantEntry:
    """The variant for x in `layout`, this conv's sizes and scales stored as `scales`; `forced` names one."""
    M, OCg = geom.M, geom.OCg
    outputs = M * OCg * geom.groups

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        bm, bn = _block(entry)
        # outputs the dispatched workgroups compute per output wanted, in tenths: a big block only
        # wins where the conv fills it
        padded = round(10 * (-(-M // bm) * bm) * (-(-OCg // bn) * bn) / (M * OCg))
        # tensor cores: the block for the conv's size (SMALL_CONV_MACS says why: more workgroups, fewer
        # K splits and a shorter gather per step against the larger block's operand reuse); else the
        # larger block (the packed-dot tiles were fastest at their largest on those layers)
        area: tuple[float, int] = (-bm * bn, 0)
        if "coop" in axes and outputs * 4 * geom.K4 < SMALL_CONV_MACS:
            area = (bm * bn, 0)
        elif "coop" in axes and outputs < BIG_CONV_OUTPUTS:  # the block nearest MID_BLOCK_AREA, the larger on a tie
            area = (abs(math.log2(bm * bn / MID_BLOCK_AREA)), -bm * bn)
        # operands staged through shared memory are reused by the whole workgroup (and staged tiles can
        # split K): faster on a GPU, and on lavapipe too (1.1-2.3x on the --small layers of __main__)
        staged = bool(axes.get("stage", "coop" in axes))
        # two shared stages before one: one stage ties or wins only where more workgroups than fit in
        # two stages' shared memory run (res2 3x3 at batch 8); `bench tune` finds those
        stages = -int(axes.get("stages", {}).get("s", 0))
        return ("coop" not in axes, axes.get("dot") not in ("dot", "sdot"), axes.get("dot") != "sdot",
                axes.get("input_layout") == "generic", axes.get("dtype") != scales, not staged, padded,
                area, stages, entry.local_size[0])

    # emulated tensor cores (a `coop` axis value that is a name) exist for tests: never picked
    hardware = [e for e in runnable(manifest, dev, ROLE).entries(role=ROLE) if not emulated(e.axes)]
    return layout_scale_entry(manifest, dev, role=ROLE, layout=layout, scales=scales, forced=forced,
                              preference=preference, candidates=manifest.subset(hardware))


def split_plan(dev: Device, entry: VariantEntry, geom: ConvGeometry, split_k: Any = None) -> SplitPlan:
    """S and the K words per split: `split_k` if given (clamped to the K steps there are and to the
    partial sums one buffer holds), else 1 on a CPU or where the output tiles fill a GPU, else enough
    splits to fill it, each at least MIN_STEPS_PER_SPLIT K steps long, and no more than one buffer
    holds the partial sums of. Filled: K_SPLIT_FILL workgroups, or K_SPLIT_THREADS invocations where
    that is fewer workgroups."""
    step = k_step(entry)
    K4 = geom.K4
    if split_k is not None:
        wanted = validate.positive_int(split_k, "split_k")
        if wanted > 1 and not step:
            raise ValueError(f"split_k={split_k!r}: variant {entry.name!r} cannot split K (it declares no "
                             "IGEMM_K_STEP); use a staged variant or split_k=None")
        wanted = min(wanted, _room(dev, geom))
    elif not step or dev.info.device_type == "cpu":
        wanted = 1
    else:
        tiles = _tiles(entry, geom)
        fill = min(K_SPLIT_FILL, K_SPLIT_THREADS // math.prod(entry.local_size))
        wanted = 1 if tiles >= fill else min(MAX_SPLITS, -(-fill // tiles),
                                             max(1, -(-K4 // step) // MIN_STEPS_PER_SPLIT), _room(dev, geom))
    if wanted <= 1:
        return SplitPlan(1, K4)
    steps = -(-K4 // step)
    per_split = -(-steps // min(wanted, steps)) * step
    return SplitPlan(-(-K4 // per_split), per_split)


def split_counts(dev: Device, entry: VariantEntry, geom: ConvGeometry) -> list[int]:
    """The K split counts worth timing for this conv (`bench tune` sweeps them): those of SPLIT_LADDER
    as split_plan makes them (clamped to the K steps there are and to one buffer's partial sums); [1]
    for a variant that cannot split."""
    if not k_step(entry):
        return [1]
    return sorted({split_plan(dev, entry, geom, s).splits for s in SPLIT_LADDER})


@contextmanager
def split_scratch(dev: Device, entry: VariantEntry, geom: ConvGeometry, plan: SplitPlan
                  ) -> Iterator[dict[str | int, Buffer | np.ndarray]]:
    """Bindings 7 and 8 of a template that can split K: a slice of partial sums per split (filled with a
    junk byte: each split writes its slice before any is read) and zeroed tile counts (the dispatch
    leaves them zero again, so the bench may reuse them), or one-word stand-ins when S = 1."""
    if not k_step(entry):
        yield {}
        return
    if plan.splits == 1:
        yield {7: np.zeros(4, np.int32), 8: np.zeros(1, np.int32)}
        return
    part_bytes = plan.splits * _slice_bytes(geom)
    check_limit(dev, "split-K partial sums", part_bytes)
    with dev.alloc(part_bytes, fill=0xA5) as part, dev.alloc(4 * _tiles(entry, geom), fill=0) as count:
        yield {7: part, 8: count}


def _weight_element(entry: VariantEntry) -> int:
    """Bytes per element of `entry`'s weights binding: 4 (a k-word) or 16 (4 k-words of a column)."""
    size = entry.binding(2).element_size
    if size not in (4, 16):
        raise ValueError(f"{entry.name}: weights binding of {size}-byte elements; the igemm formats are 4 and 16")
    return size


def entry_weight_bytes(entry: VariantEntry, geom: ConvGeometry) -> int:
    """The size of entry_weights' result, without packing the weights (for the limit check)."""
    size = _weight_element(entry)
    return size * geom.groups * -(-4 * geom.K4 // size) * geom.OCg


def entry_weights(entry: VariantEntry, w_words: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """pack_weights_q8's [G][K4][OCg] words in the format `entry` reads: as they are where its weights
    binding holds ints, 16-byte elements of 4 k-words (gemm_formats.interleave_k_words) where it holds
    ivec4 (the interface of templates/include/igemm_q8.glsl.j2)."""
    if _weight_element(entry) == 4:
        return w_words
    return interleave_k_words(w_words, geom.groups, geom.K4, geom.OCg)


def igemm_step(dev: Device, manifest: Manifest, entry: VariantEntry, layout: Layout, geom: ConvGeometry,
               x_data: np.ndarray | Buffer, w_words: np.ndarray, wsum: np.ndarray | Buffer, rq: Requant,
               out: Buffer, plan: SplitPlan, scratch: Mapping[str | int, Buffer | np.ndarray]) -> Step:
    """The one dispatch: x in `layout` -> [G][M][OCg4] int8 words in `out` (the interface of
    templates/include/igemm_q8.glsl.j2); `w_words` as pack_weights_q8 packs them (host side: each variant
    gets them in its own format)."""
    g = geom
    spec, buffers = requant_bindings(manifest, entry, rq, out, x_data, entry_weights(entry, w_words, g), wsum,
                                     layout=layout, shape=(g.N, g.C_in, g.H, g.W))
    buffers.update(scratch)
    facts = gather_facts(entry, g)
    if facts is not None:
        spec["GATHER_FACTS"] = facts
    push = {
        "dims": (g.M, g.M4, g.K4, g.OCg),
        **requant_push(rq, g.OCg4, g.groups),
        **conv_push(g),
        "split": (g.Cg4, plan.splits, plan.per_split, 0),
    }
    bm, bn = _block(entry)
    groups = (workgroups(g.M, bm), workgroups(g.OCg, bn), g.groups * plan.splits)
    return Step(dev.pipeline(entry, spec), buffers, push, groups)


def run_igemm_conv2d_q8(
    x: Any, weight: Any, w_scales: Any, bias: Any, *, x_scale: Any, x_zp: Any, out_scale: Any, out_zp: Any,
    stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1, activation: Any = "none",
    input_layout: Any = None, packed: Any = None, variant: str | None = None, split_k: Any = None,
    device: Device | None = None, guard: bool = False, timestamps: bool = False,
    pad_garbage: np.random.Generator | None = None,
) -> IgemmRun:
    """igemm_conv2d_q8 with the knobs tests and benchmarks need: `split_k` (force S), guard bands around
    the output, GPU timestamps, garbage (from `pad_garbage`) in the padding bytes of the packed input.
    Only the output buffer can outlive the call (as a device-resident result)."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    geom = conv_geometry(xin.shape, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    rq = check_requant(w_scales, bias, geom.C_out, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    dev = device_of(device)
    where = conv_placement(packed, xin, dev)
    entry = igemm_entry(manifest, dev, xin.layout.name, geom, scale_dtype(rq), variant)
    check_storage(manifest, entry, rq)
    plan = split_plan(dev, entry, geom, split_k)
    gg = GemmGeometry(geom.groups, geom.M, geom.K4, geom.OCg)
    check_limits(dev, {"x": 4 * xin.layout.words(xin.shape), "weight": entry_weight_bytes(entry, geom),
                       "output": gg.out_bytes})
    x_data = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    w_words, wsum = pack_weights_q8(weight, geom.groups)
    out_buf = dev.alloc(gg.out_bytes, guard=guard)
    with split_scratch(dev, entry, geom, plan) as scratch:
        seconds = run_into(dev, out_buf, lambda: igemm_step(dev, manifest, entry, xin.layout, geom, x_data, w_words,
                                                            wsum, rq, out_buf, plan, scratch),
                           f"{entry.name} output", guard=guard, timestamps=timestamps)
    # out_buf is freed here unless it is the device-resident result (then the result owns it)
    return IgemmRun(deliver_gemm(dev, out_buf, geom, where), entry.name, geom, plan.splits, seconds)


def igemm_conv2d_q8(
    x: np.ndarray | Packed,
    weight: np.ndarray,
    w_scales: np.ndarray,
    bias: np.ndarray | None,
    *,
    x_scale: float,
    x_zp: int,
    out_scale: float,
    out_zp: int,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    activation: str = "none",
    input_layout: str | None = None,
    packed: bool | None = None,
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray | Packed:
    """Quantized int8 conv2d as one implicit GEMM on the Vulkan device; int8 (N, C_out, H_out, W_out).

    conv2d_q8's arguments and result: x is int8 logical NCHW, packed on the host in `input_layout`
    (default "4w4c"), or a tensor packed with ``runtime.pack(x, layout)``; weight is int8
    (C_out, C_in/groups, KH, KW). acc = sum over taps of (x - x_zp) * w (padding taps add 0);
    y = acc * x_scale * w_scales[oc] + bias[oc]; ReLU if asked; q = clamp(round(y / out_scale) + out_zp,
    -128, 127). No im2col matrix is made: the shader gathers x itself. `variant` forces a q8ta_igemm
    variant by name; None picks one by layout, scale dtype, shape and device.
    Result (as conv2d_q8's): an int8 NCHW array; a device-resident Packed in the 4c layout when x is
    one, ``packed=True`` / ``False`` ask for a Packed / an array whatever x is.
    """
    return run_igemm_conv2d_q8(x, weight, w_scales, bias, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                               out_zp=out_zp, stride=stride, padding=padding, dilation=dilation, groups=groups,
                               activation=activation, input_layout=input_layout, packed=packed, variant=variant,
                               device=device).result
