"""Host side of int8 conv2d as im2col + GEMM: check arguments, pick variants, pack, dispatch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.core.registry import implementations
from runtime.core.select import check_forced, device_unfit, pick
from runtime.oplib import conv as common
from runtime.oplib import validate
from runtime.oplib.conv import (
    ConvGeometry,
    ConvInput,
    activation_code,
    check_limit,
    conv_input,
    device_of,
    workgroups,
)
from runtime.oplib.gemm_formats import (
    matrix_to_nchw,
    pack_matrix_4w4c,
    pack_weights_q8,
    unpack_matrix_4w4c,
    unpack_output_4c,
)

# workgroups below which a GEMM is assumed not to fill a GPU (an H100 has 132 SMs; lavapipe a few threads)
FILL_WORKGROUPS = 128
DEFAULT_LAYOUT = "4w4c"
# |sum of (x - x_zp) * w| <= K * 255 * 128 must stay inside int32 accumulators
MAX_K = (2**31 - 1) // (255 * 128)


@dataclass
class ConvRun:
    """Everything a test or benchmark may want from one execution."""

    output: np.ndarray
    im2col_variant: str
    gemm_variant: str
    geometry: ConvGeometry
    im2col_words: np.ndarray | None = None
    seconds: list[float] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def int8_input(x: Any, input_layout: Any, manifest: Manifest) -> ConvInput:
    """`x` as int8 NCHW to pack, or already packed (runtime.pack(x, layout))."""
    return conv_input(x, input_layout, manifest, dtypes=("int8",), default_layout=DEFAULT_LAYOUT,
                      check_array=lambda a: validate.int8_array(a, "x", 4))


def conv_geometry(
    x_shape: tuple[int, ...], weight: Any, *, stride: Any, padding: Any, dilation: Any, groups: Any
) -> ConvGeometry:
    """Check the weight, shapes and conv parameters; ValueError/TypeError naming the argument."""
    weight = validate.int8_array(weight, "weight", 4)
    geom = common.conv_geometry(x_shape, weight.shape, stride=stride, padding=padding, dilation=dilation,
                                groups=groups)
    if geom.Kp > MAX_K:
        raise ValueError(
            f"weight.shape={weight.shape}: reduction length {geom.Kp} exceeds {MAX_K}, "
            "where int32 accumulators could overflow"
        )
    return geom


def _im2col_entry(
    manifest: Manifest, device: Device, layout: str, forced: str | None, K4: int
) -> VariantEntry:
    def accepts(axes: Mapping[str, Any]) -> str | None:
        ok = axes.get("input_layout") in ("generic", layout)
        return None if ok else f"it reads input_layout {axes.get('input_layout')!r}, the call has {layout!r}"

    if forced is not None:
        return check_forced(
            manifest, forced, "im2col_variant", role="im2col", accepts=accepts, supports=device.supports
        )

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        # threads run along k4: a workgroup wider than the row of k4 blocks idles the rest
        idle = max(0, axes["wg"]["x"] - K4)
        return (axes.get("input_layout") == "generic", idle, axes["wg"]["y"])

    return pick(manifest, role="im2col", accepts=accepts, preference=preference, supports=device.supports,
                what=f"input_layout={layout!r}")


def _gemm_entry(
    manifest: Manifest, device: Device, OCg: int, M: int, scale_dtype: str, forced: str | None
) -> VariantEntry:
    if forced is not None:
        entry = check_forced(
            manifest, forced, "gemm_variant", role="gemm", accepts=lambda axes: None, supports=device.supports
        )
        reason = device_unfit(entry, device)
        if reason:
            raise ValueError(f"gemm_variant={forced!r} cannot run on {device.info.name}: {reason}")
        return entry

    # float16 scales widen exactly to float32, so a float32 variant serves them where the device lacks
    # the 16-bit features; among equally fast variants the scales' own dtype is preferred.
    dtypes = ("float16", "float32") if scale_dtype == "float16" else (scale_dtype,)

    def accepts(axes: Mapping[str, Any]) -> str | None:
        return None if axes.get("dtype") in dtypes else "other scale dtype"

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        block = entry.declared
        bm, bn = block["DISPATCH_BLOCK_M"], block["DISPATCH_BLOCK_N"]
        # outputs computed (whole workgroup blocks) per output wanted, in tenths: a big block only
        # wins where the GEMM fills it
        padded = round(10 * (-(-M // bm) * bm) * (-(-OCg // bn) * bn) / (M * OCg))
        # a GEMM too small to give every compute unit a workgroup wants smaller blocks (more of them);
        # one that fills the device wants the largest blocks (most operand reuse)
        blocks = -(-M // bm) * -(-OCg // bn)
        fill = -blocks if blocks < FILL_WORKGROUPS else -bm * bn
        return ("coop" not in axes, axes.get("dot") not in ("dot", "sdot"), axes.get("dot") != "sdot",
                axes.get("dtype") != scale_dtype, padded, blocks < FILL_WORKGROUPS, fill,
                not axes.get("stage", False), axes["wg"]["x"])

    def runs_here(features: Iterable[str]) -> list[str]:
        return device.supports(features)

    usable = manifest.subset([v for v in manifest.entries(role="gemm") if not device_unfit(v, device)])
    return pick(usable, role="gemm", accepts=accepts, preference=preference, supports=runs_here,
                what=f"scale dtype {scale_dtype}")


@dataclass(frozen=True)
class GemmGeometry:
    """Sizes of one grouped GEMM: G groups of (M x Kp) @ (Kp x OCg)."""

    G: int
    M: int
    K4: int
    OCg: int

    @property
    def M4(self) -> int:
        return -(-self.M // 4)

    @property
    def OCg4(self) -> int:
        return -(-self.OCg // 4)

    @property
    def a_bytes(self) -> int:
        return self.G * self.M4 * self.K4 * 16

    @property
    def out_bytes(self) -> int:
        return self.G * self.M * self.OCg4 * 4


def gemm_geometry(geom: ConvGeometry) -> GemmGeometry:
    return GemmGeometry(geom.groups, geom.M, geom.K4, geom.OCg)


def im2col_step(
    dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, x_words: np.ndarray | Buffer, x_zp: int,
    out: Buffer,
) -> Step:
    """The int8 im2col dispatch: x packed in `layout` -> 4W4C matrix in `out`, padding taps = x_zp."""
    return common.im2col_step(dev, entry, layout, geom, x_words, out, x_zp=x_zp)


@dataclass(frozen=True)
class Requant:
    """Checked requantization parameters of one call."""

    w_scales: np.ndarray
    bias: np.ndarray | None
    x_scale: float
    x_zp: int
    out_scale: float
    out_zp: int
    activation: int


def check_requant(
    w_scales: Any, bias: Any, C_out: int, *, x_scale: Any, x_zp: Any, out_scale: Any, out_zp: Any, activation: Any
) -> Requant:
    rq = Requant(
        w_scales=validate.per_channel(w_scales, "w_scales", C_out, positive=True),
        bias=None if bias is None else validate.per_channel(bias, "bias", C_out, positive=False),
        x_scale=validate.positive_finite(x_scale, "x_scale"),
        x_zp=validate.zero_point(x_zp, "x_zp"),
        out_scale=validate.positive_finite(out_scale, "out_scale"),
        out_zp=validate.zero_point(out_zp, "out_zp"),
        activation=activation_code(activation),
    )
    # the epilogue computes in float32: acc * (x_scale * w_scales[oc]) + bias[oc], then / out_scale
    validate.storable(rq.x_scale, "x_scale", np.float32, "a float32 push constant", positive=True)
    validate.storable(rq.out_scale, "out_scale", np.float32, "a float32 push constant", positive=True)
    product = rq.x_scale * rq.w_scales.astype(np.float64)
    over = np.flatnonzero(product > np.finfo(np.float32).max)
    if over.size:
        i = int(over[0])
        raise ValueError(
            f"x_scale * w_scales[{i}] = {rq.x_scale!r} * {float(rq.w_scales[i])!r} = {float(product[i]):.4g} "
            "overflows float32, in which the shader multiplies them"
        )
    return rq


def scale_dtype(rq: Requant) -> str:
    """Storage type the scales ask for: float16 only when w_scales (and bias, if any) are float16."""
    halves = rq.w_scales.dtype == np.float16 and (rq.bias is None or rq.bias.dtype == np.float16)
    return "float16" if halves else "float32"


def check_storage(manifest: Manifest, entry: VariantEntry, rq: Requant) -> None:
    """ValueError if w_scales / bias do not survive the cast to the variant's scale storage type."""
    dtype = np.dtype(manifest.dtypes[entry.axes["dtype"]]["numpy"])
    where = f"the scale storage of {entry.name!r}"
    validate.storable(rq.w_scales, "w_scales", dtype, where, positive=True)
    if rq.bias is not None:
        validate.storable(rq.bias, "bias", dtype, where, positive=False)


def gemm_step(
    dev: Device, manifest: Manifest, entry: VariantEntry, geom: GemmGeometry, a: Buffer | np.ndarray,
    w_words: np.ndarray, wsum: np.ndarray, rq: Requant, out: Buffer,
) -> Step:
    """The GEMM + requantize dispatch: 4W4C matrix `a` -> [G][M][OCg4] int8 words in `out`."""
    np_scale = np.dtype(manifest.dtypes[entry.axes["dtype"]]["numpy"])
    C_out = geom.G * geom.OCg
    bias = np.zeros(C_out) if rq.bias is None else rq.bias
    buffers = {0: out, 1: a, 2: w_words, 3: wsum, 4: rq.w_scales.astype(np_scale), 5: bias.astype(np_scale)}
    push = {
        "dims": (geom.M, geom.M4, geom.K4, geom.OCg),
        "dims2": (geom.OCg4, geom.G, rq.x_zp, rq.out_zp),
        "scales": (rq.x_scale, rq.out_scale, 0.0, 0.0),
    }
    # the template states the outputs one workgroup covers (see common.dispatch_block)
    block = entry.declared
    pipe = dev.pipeline(entry, {"ACTIVATION": rq.activation})
    groups = (workgroups(geom.M, block["DISPATCH_BLOCK_M"]), workgroups(geom.OCg, block["DISPATCH_BLOCK_N"]), geom.G)
    return Step(pipe, buffers, push, groups)


def run_im2col_q8(
    x: Any, KH: int, KW: int, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1,
    x_zp: Any = 0, input_layout: Any = None, variant: str | None = None, device: Device | None = None,
    guard: bool = False, pad_garbage: np.random.Generator | None = None,
) -> tuple[np.ndarray, str]:
    """Run only im2col; returns the (G, M, Kp) int8 matrix and the variant name."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    layout = xin.layout
    groups = validate.positive_int(groups, "groups")
    # im2col depends on the kernel's shape only; a zero kernel of that shape carries it
    weight_shape = np.zeros((groups, max(1, xin.shape[1] // groups), KH, KW), dtype=np.int8)
    geom = conv_geometry(xin.shape, weight_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_zp_i = validate.zero_point(x_zp, "x_zp")
    dev = device_of(device)
    entry = _im2col_entry(manifest, dev, layout.name, variant, geom.K4)
    gg = gemm_geometry(geom)
    check_limit(dev, "im2col matrix of x", gg.a_bytes)
    x_words = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    with dev.alloc(gg.a_bytes, guard=guard) as a_buf:
        dev.run([im2col_step(dev, entry, layout, geom, x_words, x_zp_i, a_buf)])
        if guard:
            a_buf.check_guards(f"{entry.name} output (im2col matrix)")
        words = a_buf.read(np.int32)
    return unpack_matrix_4w4c(words, geom.groups, geom.M, geom.Kp), entry.name


def run_gemm_q8(
    a: np.ndarray, weight: np.ndarray, w_scales: Any, bias: Any, *, groups: int, x_scale: Any, x_zp: Any,
    out_scale: Any, out_zp: Any, activation: Any = "none", variant: str | None = None,
    device: Device | None = None, guard: bool = False,
) -> tuple[np.ndarray, str]:
    """Run only the GEMM on an im2col matrix a (G, M, Kp); returns (G, M, OCg) int8 and the variant."""
    G, M, Kp = a.shape
    OCg = weight.shape[0] // groups
    geom = GemmGeometry(G, M, Kp // 4, OCg)
    rq = check_requant(w_scales, bias, weight.shape[0], x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    manifest = load_manifest()
    dev = device_of(device)
    entry = _gemm_entry(manifest, dev, OCg, M, scale_dtype(rq), variant)
    check_storage(manifest, entry, rq)
    w_words, wsum = pack_weights_q8(weight, groups)
    with dev.alloc(geom.out_bytes, guard=guard) as out_buf:
        step = gemm_step(dev, manifest, entry, geom, pack_matrix_4w4c(a), w_words, wsum, rq, out_buf)
        dev.run([step])
        if guard:
            out_buf.check_guards(f"{entry.name} output")
        words = out_buf.read(np.int32)
    return unpack_output_4c(words, G, M, OCg), entry.name


def run_conv2d_q8(
    x: Any,
    weight: Any,
    w_scales: Any,
    bias: Any,
    *,
    x_scale: Any,
    x_zp: Any,
    out_scale: Any,
    out_zp: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    activation: Any = "none",
    input_layout: Any = None,
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    device: Device | None = None,
    guard: bool = False,
    keep_im2col: bool = False,
    timestamps: bool = False,
    pad_garbage: np.random.Generator | None = None,
) -> ConvRun:
    """conv2d_q8 with the knobs tests and benchmarks need (guard bands, intermediates, timing)."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    layout = xin.layout
    geom = conv_geometry(xin.shape, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    rq = check_requant(w_scales, bias, geom.C_out, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    dev = device_of(device)
    im2col = _im2col_entry(manifest, dev, layout.name, im2col_variant, geom.K4)
    gemm = _gemm_entry(manifest, dev, geom.OCg, geom.M, scale_dtype(rq), gemm_variant)
    check_storage(manifest, gemm, rq)

    gg = gemm_geometry(geom)
    # sizes first: an oversized call fails before the (possibly huge) host-side packing
    x_bytes = 4 * layout.words((geom.N, geom.C_in, geom.H, geom.W))
    w_bytes = 4 * geom.groups * geom.K4 * geom.OCg
    for what, nbytes in (("x", x_bytes), ("weight", w_bytes), ("im2col matrix of x", gg.a_bytes),
                         ("output", gg.out_bytes)):
        check_limit(dev, what, nbytes)
    x_words = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    w_words, wsum = pack_weights_q8(weight, geom.groups)

    with dev.alloc(gg.a_bytes, guard=guard) as a_buf, dev.alloc(gg.out_bytes, guard=guard) as out_buf:
        steps = [
            im2col_step(dev, im2col, layout, geom, x_words, rq.x_zp, a_buf),
            gemm_step(dev, manifest, gemm, gg, a_buf, w_words, wsum, rq, out_buf),
        ]
        seconds = dev.run(steps, timestamps=timestamps)
        if guard:
            a_buf.check_guards(f"{im2col.name} output (im2col matrix)")
            out_buf.check_guards(f"{gemm.name} output")
        mat = unpack_output_4c(out_buf.read(np.int32), geom.groups, geom.M, geom.OCg)  # (G, M, OCg)
        im2col_words = a_buf.read(np.int32) if keep_im2col else None
    output = np.ascontiguousarray(matrix_to_nchw(mat, geom.N, geom.H_out, geom.W_out))
    return ConvRun(output, im2col.name, gemm.name, geom, im2col_words, seconds)


def conv2d_q8(
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
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray:
    """Quantized int8 conv2d on the Vulkan device; returns int8 (N, C_out, H_out, W_out).

    x is int8 logical NCHW, packed on the host in `input_layout` (default "4w4c") before the
    dispatch; or a tensor already packed with ``runtime.pack(x, layout)`` (its own layout is used).
    acc = sum over taps of (x - x_zp) * w (padding taps add 0); y = acc * x_scale * w_scales[oc]
    + bias[oc]; ReLU if asked; q = clamp(round(y / out_scale) + out_zp, -128, 127).
    A variant left as None is picked by layout and device features; a name forces it. With no
    variant forced, another family's implementation of conv2d_q8 (e.g. the direct depthwise conv
    of q8ta_dwconv) serves the call when it accepts it.
    """
    kwargs: dict[str, Any] = dict(
        x_scale=x_scale, x_zp=x_zp, out_scale=out_scale, out_zp=out_zp, stride=stride, padding=padding,
        dilation=dilation, groups=groups, activation=activation, input_layout=input_layout, device=device,
    )
    if im2col_variant is None and gemm_variant is None:
        for implementation in implementations("conv2d_q8"):
            result = implementation(x, weight, w_scales, bias, **kwargs)
            if result is not NotImplemented:
                return np.asarray(result)
    return run_conv2d_q8(x, weight, w_scales, bias, im2col_variant=im2col_variant, gemm_variant=gemm_variant,
                         **kwargs).output
