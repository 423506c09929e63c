"""Host side of int8 conv2d as im2col + GEMM: check arguments, pick variants, pack, dispatch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.core import tuning
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
    check_limit,
    conv_input,
    device_of,
)
from runtime.oplib.gemm_formats import (
    matrix_to_nchw,
    pack_matrix_4w4c,
    pack_weights_q8,
    unpack_matrix_4w4c,
    unpack_output_4c,
)
from runtime.oplib.gemm_q8 import GemmGeometry, gemm_entry, gemm_step
from runtime.oplib.requant import MAX_K, check_requant, check_storage, scale_dtype, scale_dtypes_for
from runtime.oplib.requant import Requant as Requant

DEFAULT_LAYOUT = "4w4c"


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


# op keys of the tuning cache (runtime/core/tuning.py; `python -m bench tune` writes them)
TUNING_KEYS = {"im2col": "q8ta_conv2d.im2col", "gemm": "q8ta_conv2d.gemm"}


def _pow2(n: int) -> int:
    """The largest power of two <= n (1 for n < 2): the bucket of a size."""
    return 1 << (max(1, int(n)).bit_length() - 1)


def shape_class(role: str, *, K4: int, layout: str = "", M: int = 0, OCg: int = 0, scale_dtype: str = "") -> str:
    """Tuning-cache class of one pass of the conv, sizes bucketed by powers of two: im2col by input
    layout and K4 (the pickers' inputs); the GEMM by M, OCg, K4 and the scales' storage dtype."""
    if role == "im2col":
        return f"{layout} K4~{_pow2(K4)}"
    if role == "gemm":
        return f"M~{_pow2(M)} N~{_pow2(OCg)} K4~{_pow2(K4)} {scale_dtype}"
    raise ValueError(f"role={role!r}: the conv's passes are {sorted(TUNING_KEYS)}")


def _tuned(manifest: Manifest, device: Device, role: str, shape: str,
           accepts: Callable[[Mapping[str, Any]], str | None]) -> VariantEntry | None:
    """The tuning cache's variant for this class, if it names one that exists, serves the call and fits."""
    choice = tuning.lookup(device, manifest, TUNING_KEYS[role], shape)
    entry = manifest.variants.get(choice) if isinstance(choice, str) else None
    if entry is None or entry.role != role or accepts(entry.axes):
        return None
    if device.supports(entry.features) or device_unfit(entry, device):
        return None
    return entry


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
    tuned = _tuned(manifest, device, "im2col", shape_class("im2col", K4=K4, layout=layout), accepts)
    if tuned is not None:
        return tuned

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        # threads run along k4: a workgroup wider than the row of k4 blocks idles the rest
        idle = max(0, axes["wg"]["x"] - K4)
        return (axes.get("input_layout") == "generic", idle, axes["wg"]["y"])

    return pick(manifest, role="im2col", accepts=accepts, preference=preference, supports=device.supports,
                what=f"input_layout={layout!r}")


def _gemm_entry(
    manifest: Manifest, device: Device, OCg: int, M: int, scale_dtype: str, forced: str | None,
    *, K4: int | None = None,
) -> VariantEntry:
    """The tuned GEMM variant of this shape class where the cache has one that fits (K4 given, nothing
    forced); else the shared heuristic pick of runtime.oplib.gemm_q8."""
    if forced is None and K4 is not None:
        dtypes = scale_dtypes_for(scale_dtype)

        def accepts(axes: Mapping[str, Any]) -> str | None:
            return None if axes.get("dtype") in dtypes else "other scale dtype"

        shape = shape_class("gemm", K4=K4, M=M, OCg=OCg, scale_dtype=scale_dtype)
        tuned = _tuned(manifest, device, "gemm", shape, accepts)
        if tuned is not None:
            return tuned
    return gemm_entry(manifest, device, OCg, M, scale_dtype, forced)


def gemm_geometry(geom: ConvGeometry) -> GemmGeometry:
    return GemmGeometry(geom.groups, geom.M, geom.K4, geom.OCg)


def im2col_step(
    dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, x_words: np.ndarray | Buffer, x_zp: int,
    out: Buffer,
) -> Step:
    """The int8 im2col dispatch: x packed in `layout` -> 4W4C matrix in `out`, padding taps = x_zp."""
    return common.im2col_step(dev, entry, layout, geom, x_words, out, x_zp=x_zp)


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
    gemm = _gemm_entry(manifest, dev, geom.OCg, geom.M, scale_dtype(rq), gemm_variant, K4=geom.K4)
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
