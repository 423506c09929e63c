"""Host side of int8 conv2d as im2col + GEMM: check arguments, pick variants, pack, dispatch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.core import tuning
from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.core.registry import implementations
from runtime.core.select import check_forced, pick, unrunnable
from runtime.oplib import conv as common
from runtime.oplib import validate
from runtime.oplib.conv import INT8_LAYOUT, ConvGeometry, check_limit, check_limits, device_of
from runtime.oplib.conv import int8_input as int8_input
from runtime.oplib.conv_output import ConvResult, conv_placement, deliver_gemm
from runtime.oplib.gemm_formats import (
    MATRIX_FORMATS,
    formats_agree,
    pack_matrix_4w4c,
    pack_matrix_upstream,
    pack_weights_q8,
    unpack_matrix_4w4c,
    unpack_matrix_upstream,
    unpack_output_4c,
)
from runtime.oplib.gemm_q8 import GemmGeometry, gemm_accepts, gemm_entry, gemm_step, reads_matrix
from runtime.oplib.requant import MAX_K, check_requant, check_storage, scale_dtype
from runtime.oplib.requant import Requant as Requant
from runtime.oplib.variants import input_layout_reason

from .im2col import im2col_step as im2col_step
from .im2col import k4_per_group, matrix_bytes, matrix_of

DEFAULT_LAYOUT = INT8_LAYOUT


@dataclass
class ConvRun(ConvResult):
    """Everything a test or benchmark may want from one execution."""

    result: np.ndarray | Packed  # what the op returns: the NCHW array, or a 4c Packed (see `packed`)
    im2col_variant: str
    gemm_variant: str
    geometry: ConvGeometry
    im2col_words: np.ndarray | None = None
    seconds: list[float] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


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


def shape_class(role: str, *, K4: int, layout: str = "", M: int = 0, OCg: int = 0, scale_dtype: str = "",
                matrix: str = "") -> str:
    """Tuning-cache class of one pass of the conv, sizes bucketed by powers of two: im2col by input
    layout and K4 (the pickers' inputs); the GEMM by M, OCg, K4 and the scales' storage dtype. A call
    bound to the upstream matrix format (where the formats differ, runtime/oplib/gemm_formats.py) is a
    class of its own: `matrix="upstream"`."""
    suffix = " upstream" if matrix == "upstream" else ""
    if role == "im2col":
        return f"{layout} K4~{_pow2(K4)}{suffix}"
    if role == "gemm":
        return f"M~{_pow2(M)} N~{_pow2(OCg)} K4~{_pow2(K4)} {scale_dtype}{suffix}"
    raise ValueError(f"role={role!r}: the conv's passes are {sorted(TUNING_KEYS)}")


def _tuned(manifest: Manifest, device: Device, role: str, shape: str,
           accepts: Callable[[Mapping[str, Any]], str | None]) -> VariantEntry | None:
    """The tuning cache's variant for this class, if it names one that exists, serves the call and fits."""
    choice = tuning.lookup(device, manifest, TUNING_KEYS[role], shape)
    entry = manifest.variants.get(choice) if isinstance(choice, str) else None
    if entry is None or entry.role != role or accepts(entry.axes):
        return None
    if unrunnable(entry, device):
        return None
    return entry


Formats = tuple[str, ...]


def _class_format(matrix: Formats) -> str:
    """The format a shape class is bound to: none where both formats serve the call (the same bytes)."""
    return matrix[0] if len(matrix) == 1 else ""


def _im2col_entry(
    manifest: Manifest, device: Device, layout: str, forced: str | None, K4: int,
    matrix: Formats = MATRIX_FORMATS,
) -> VariantEntry:
    """The im2col variant reading `layout` and writing a matrix of one of the formats `matrix`: forced,
    tuned, or by the heuristic (a variant specialized for the layout, then more rows per thread)."""
    def accepts(axes: Mapping[str, Any]) -> str | None:
        return input_layout_reason(axes, layout) or reads_matrix(axes, matrix)

    if forced is not None:
        return check_forced(
            manifest, forced, "im2col_variant", role="im2col", accepts=accepts, supports=device.supports
        )
    tuned = _tuned(manifest, device, "im2col",
                   shape_class("im2col", K4=K4, layout=layout, matrix=_class_format(matrix)), accepts)
    if tuned is not None:
        return tuned

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        # strips of several row blocks per thread read each input row once for all kernel x taps and
        # divide once per strip: faster on a CPU device (lavapipe: few wide threads); on the H200 one
        # row block per thread won every ResNet/MobileNet layer by 1.2-2.7x (its tuning run,
        # bench/results/): a GPU wants the parallelism. A tuning cache overrides both.
        strip = int(axes.get("work", {}).get("strip", 1))
        more_rows_first = -strip if device.info.device_type == "cpu" else strip
        return (axes.get("input_layout") == "generic", matrix.index(matrix_of(axes)), more_rows_first,
                axes["wg"]["x"])

    return pick(manifest, role="im2col", accepts=accepts, preference=preference, supports=device.supports,
                what=f"input_layout={layout!r}, {' or '.join(matrix)} matrix")


def _gemm_entry(
    manifest: Manifest, device: Device, OCg: int, M: int, scale_dtype: str, forced: str | None,
    *, K4: int | None = None, matrix: Formats = ("native",),
) -> VariantEntry:
    """The tuned GEMM variant of this shape class where the cache has one that fits (K4 given, nothing
    forced); else the shared heuristic pick of runtime.oplib.gemm_q8. It reads one of the formats `matrix`."""
    if forced is None and K4 is not None:
        shape = shape_class("gemm", K4=K4, M=M, OCg=OCg, scale_dtype=scale_dtype, matrix=_class_format(matrix))
        tuned = _tuned(manifest, device, "gemm", shape, gemm_accepts(matrix, scale_dtype))
        if tuned is not None:
            return tuned
    return gemm_entry(manifest, device, OCg, M, scale_dtype, forced, matrix=matrix, K4=K4)


def gemm_geometry(geom: ConvGeometry, matrix: str = "native") -> GemmGeometry:
    """The GEMM's dispatch geometry over this conv's matrix in `matrix` format (upstream: its rows
    include each image row's padding pixels; gemm_rows says where they are)."""
    if matrix == "native":
        return GemmGeometry(geom.groups, geom.M, geom.K4, geom.OCg)
    return GemmGeometry(geom.groups, geom.N * geom.H_out * -(-geom.W_out // 4) * 4, k4_per_group(geom, matrix),
                        geom.OCg)


def gemm_rows(geom: ConvGeometry, matrix: str) -> tuple[int, int, int, int] | None:
    """The `rows` of runtime.oplib.gemm_q8.gemm_step for a GEMM reading this conv's `matrix`-format matrix."""
    if matrix == "native":
        return None
    k4g = k4_per_group(geom, matrix)
    return geom.W_out, -(-geom.W_out // 4), geom.groups * k4g, geom.M


def matrix_formats(manifest: Manifest, geom: ConvGeometry, matrix: Any, forced: Mapping[str, str | None]) -> Formats:
    """The im2col matrix formats this call's two passes may use, preferred first.

    `matrix` (the op's argument) or a forced variant binds the format; both passes then use it (a forced
    variant of another format is a ValueError). Where both formats are the same bytes (groups 1, C_in and
    W_out multiples of 4) any pair serves. Otherwise the smaller matrix goes first (upstream pads K once per
    group, native once per tap; upstream pads every image row): less to write and to multiply."""
    if matrix is not None:
        validate.choice(matrix, "matrix", list(MATRIX_FORMATS))
    agree = formats_agree(geom)
    bound = {arg: matrix_of(manifest.variants[name]) for arg, name in forced.items()
             if isinstance(name, str) and name in manifest.variants}
    if not agree:
        wanted = {**({"matrix": matrix} if matrix is not None else {}), **bound}
        if len(set(wanted.values())) > 1:
            said = ", ".join(f"{arg} -> {fmt}" for arg, fmt in wanted.items())
            raise ValueError(f"the im2col and the GEMM must share one matrix format for this conv ({said}); "
                             "the formats differ unless groups == 1 and C_in and W_out are multiples of 4")
        if wanted:
            return (next(iter(wanted.values())),)
    elif matrix is not None:
        return (matrix,)
    if agree:
        return MATRIX_FORMATS
    smaller = matrix_bytes(geom, "upstream") < matrix_bytes(geom, "native")
    return ("upstream", "native") if smaller else ("native", "upstream")


@dataclass(frozen=True)
class Passes:
    """The im2col and GEMM variants of one call and the matrix format between them."""

    im2col: VariantEntry
    gemm: VariantEntry

    @property
    def matrix(self) -> str:
        """The GEMM's format; the im2col's is the same or, where formats agree, the same bytes."""
        return matrix_of(self.gemm)


def pick_passes(manifest: Manifest, dev: Device, geom: ConvGeometry, layout: str, scale: str, *,
                matrix: Any = None, im2col_variant: str | None = None, gemm_variant: str | None = None) -> Passes:
    """Both passes of a call, in one format: the first of :func:`matrix_formats` both have a variant for."""
    formats = matrix_formats(manifest, geom, matrix, {"im2col_variant": im2col_variant, "gemm_variant": gemm_variant})
    # where the formats agree both are candidates at once; else one format at a time, preferred first
    tries = [formats] if formats_agree(geom) and len(formats) > 1 else [(f,) for f in formats]
    for i, fmt in enumerate(tries):
        try:
            im2col = _im2col_entry(manifest, dev, layout, im2col_variant, k4_per_group(geom, fmt[0]), fmt)
            gemm = _gemm_entry(manifest, dev, geom.OCg, geom.M, scale, gemm_variant,
                               K4=k4_per_group(geom, fmt[0]), matrix=fmt)
        except ValueError:
            if i + 1 == len(tries):
                raise
            continue
        return Passes(im2col, gemm)
    raise AssertionError("unreachable: the last format's failure is raised")


def run_im2col_q8(
    x: Any, KH: int, KW: int, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1,
    x_zp: Any = 0, input_layout: Any = None, variant: str | None = None, device: Device | None = None,
    guard: bool = False, pad_garbage: np.random.Generator | None = None, matrix: Any = None,
    kh_parts: Any = None, stream: Any = None,
) -> tuple[np.ndarray, str]:
    """Run only im2col; returns the int8 matrix in its variant's format (native: (G, M, Kp); upstream:
    (N, H_out, Wp, K), see runtime/oplib/gemm_formats.py) and the variant name. `matrix` picks the format
    when no variant is forced (default: native); `kh_parts` splits the kernel rows over that many
    threads each where the shader's path can, `stream` takes the stream path where it can (True) or
    never (False); None for either: the device's choice. The matrix is the same whatever they say."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    layout = xin.layout
    groups = validate.positive_int(groups, "groups")
    # im2col depends on the kernel's shape only; a zero kernel of that shape carries it
    weight_shape = np.zeros((groups, max(1, xin.shape[1] // groups), KH, KW), dtype=np.int8)
    geom = conv_geometry(xin.shape, weight_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_zp_i = validate.zero_point(x_zp, "x_zp")
    parts = None if kh_parts is None else validate.positive_int(kh_parts, "kh_parts")
    use_stream = validate.flag(stream, "stream", allow_none=True)
    dev = device_of(device)
    if matrix is not None:
        validate.choice(matrix, "matrix", list(MATRIX_FORMATS))
    fmt = str(matrix or "native")
    entry = _im2col_entry(manifest, dev, layout.name, variant, k4_per_group(geom, fmt),
                          MATRIX_FORMATS if variant is not None and matrix is None else (fmt,))
    fmt = matrix_of(entry)
    nbytes = matrix_bytes(geom, fmt)
    check_limit(dev, "im2col matrix of x", nbytes)
    x_words = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    with dev.alloc(nbytes, guard=guard) as a_buf:
        dev.run([im2col_step(dev, entry, layout, geom, x_words, x_zp_i, a_buf, parts, use_stream)])
        if guard:
            a_buf.check_guards(f"{entry.name} output (im2col matrix)")
        words = a_buf.read(np.int32)
    if fmt == "upstream":
        return unpack_matrix_upstream(words, geom), entry.name
    return unpack_matrix_4w4c(words, geom.groups, geom.M, geom.Kp), entry.name


def run_gemm_q8(
    a: np.ndarray, weight: np.ndarray, w_scales: Any, bias: Any, *, groups: int, x_scale: Any, x_zp: Any,
    out_scale: Any, out_zp: Any, activation: Any = "none", variant: str | None = None,
    device: Device | None = None, guard: bool = False, w_out: int | None = None,
) -> tuple[np.ndarray, str]:
    """Run only the GEMM on an im2col matrix; returns (G, M, OCg) int8 and the variant. `a` is native
    (G, M, Kp), or upstream (N, H_out, Wp, K) (runtime/oplib/gemm_formats.py), which needs `w_out`, the
    conv's W_out (the pixels of each row that are not padding)."""
    rq = check_requant(w_scales, bias, weight.shape[0], x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    OCg = weight.shape[0] // groups
    fmt = "upstream" if a.ndim == 4 else "native"
    rows = None
    if fmt == "native":
        G, M, Kp = a.shape
        geom = GemmGeometry(G, M, Kp // 4, OCg)
        a_words = pack_matrix_4w4c(a)
    else:
        if w_out is None or not 0 < w_out <= a.shape[2]:
            raise ValueError(f"w_out={w_out!r}: an upstream matrix {a.shape} needs the conv's W_out (1..{a.shape[2]})")
        n, ho, wp, k = a.shape
        G, M = groups, n * ho * w_out
        geom = GemmGeometry(G, n * ho * wp, k // 4 // G, OCg)
        rows = (w_out, wp // 4, k // 4, M)
        a_words = pack_matrix_upstream(a)
    manifest = load_manifest()
    dev = device_of(device)
    entry = _gemm_entry(manifest, dev, OCg, M, scale_dtype(rq), variant, matrix=(fmt,))
    check_storage(manifest, entry, rq)
    w_words, wsum = pack_weights_q8(weight, groups, fmt)
    out_bytes = GemmGeometry(G, M, geom.K4, OCg).out_bytes
    with dev.alloc(out_bytes, guard=guard) as out_buf:
        step = gemm_step(dev, manifest, entry, geom, a_words, w_words, wsum, rq, out_buf, rows=rows)
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
    packed: Any = None,
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    matrix: Any = None,
    device: Device | None = None,
    guard: bool = False,
    keep_im2col: bool = False,
    timestamps: bool = False,
    pad_garbage: np.random.Generator | None = None,
) -> ConvRun:
    """conv2d_q8 with the knobs tests and benchmarks need (guard bands, intermediates, timing).
    Only the GEMM's output buffer can outlive the call (as a device-resident result); the im2col
    matrix and the uploaded weights are freed when it returns."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    layout = xin.layout
    geom = conv_geometry(xin.shape, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    rq = check_requant(w_scales, bias, geom.C_out, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    dev = device_of(device)
    where = conv_placement(packed, xin, dev)
    passes = pick_passes(manifest, dev, geom, layout.name, scale_dtype(rq), matrix=matrix,
                         im2col_variant=im2col_variant, gemm_variant=gemm_variant)
    im2col, gemm, fmt = passes.im2col, passes.gemm, passes.matrix
    check_storage(manifest, gemm, rq)

    gg = gemm_geometry(geom)  # the output's rows
    ga = gemm_geometry(geom, fmt)  # the GEMM's dispatch over the matrix's rows
    a_bytes = matrix_bytes(geom, fmt)
    check_limits(dev, {"x": 4 * layout.words((geom.N, geom.C_in, geom.H, geom.W)),
                       "weight": 4 * geom.groups * ga.K4 * geom.OCg, "im2col matrix of x": a_bytes,
                       "output": gg.out_bytes})
    x_words = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    w_words, wsum = pack_weights_q8(weight, geom.groups, fmt)

    out_buf = dev.alloc(gg.out_bytes, guard=guard)
    try:
        with dev.alloc(a_bytes, guard=guard) as a_buf:
            steps = [
                im2col_step(dev, im2col, layout, geom, x_words, rq.x_zp, a_buf),
                gemm_step(dev, manifest, gemm, ga, a_buf, w_words, wsum, rq, out_buf, rows=gemm_rows(geom, fmt)),
            ]
            seconds = dev.run(steps, timestamps=timestamps)
            if guard:
                a_buf.check_guards(f"{im2col.name} output (im2col matrix)")
                out_buf.check_guards(f"{gemm.name} output")
            im2col_words = a_buf.read(np.int32) if keep_im2col else None
    except BaseException:
        out_buf.free()  # a failed call leaks no device memory
        raise
    # out_buf is freed here unless it is the device-resident result (then the result owns it)
    result = deliver_gemm(dev, out_buf, geom, where)
    return ConvRun(result, im2col.name, gemm.name, geom, im2col_words, seconds)


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
    packed: bool | None = None,
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    matrix: str | None = None,
    device: Device | None = None,
) -> np.ndarray | Packed:
    """Quantized int8 conv2d on the Vulkan device; returns int8 (N, C_out, H_out, W_out).

    x is int8 logical NCHW, packed on the host in `input_layout` (default "4w4c") before the
    dispatch; or a tensor already packed with ``runtime.pack(x, layout)`` (its own layout is used).
    Result: an int8 NCHW array; a device-resident Packed in the 4c layout when x is one (the output
    never leaves the device, so convs chain there), ``packed=True`` / ``False`` ask for a Packed (4c,
    on the host unless x is on the device) / an array whatever x is. Grouped convs other than
    depthwise (groups > 1) go through the host once before a device result is uploaded again
    (runtime/oplib/conv_output.py says why). A device result owns its buffer: it lives as long as
    the Packed does; everything else the call allocated is freed when it returns.
    acc = sum over taps of (x - x_zp) * w (padding taps add 0); y = acc * x_scale * w_scales[oc]
    + bias[oc]; ReLU if asked; q = clamp(round(y / out_scale) + out_zp, -128, 127).
    A variant left as None is picked by layout and device features; a name forces it. `matrix`
    ("native" or "upstream", runtime/oplib/gemm_formats.py) is the im2col matrix format both passes
    use; None picks it: the smaller matrix where the formats differ, or a forced variant's format.
    With no variant or matrix format asked for, another family's implementation of conv2d_q8 (e.g.
    the direct depthwise conv of q8ta_dwconv) serves the call when it accepts it.
    """
    kwargs: dict[str, Any] = dict(
        x_scale=x_scale, x_zp=x_zp, out_scale=out_scale, out_zp=out_zp, stride=stride, padding=padding,
        dilation=dilation, groups=groups, activation=activation, input_layout=input_layout, device=device,
    )
    if im2col_variant is None and gemm_variant is None and matrix is None:
        # `packed` goes to the implementations only where the result may be a Packed, so one that does not
        # take it (and declines arguments it does not know) still serves the calls that return an array
        placed = dict(kwargs, packed=packed) if packed is not None or _device_resident(x) else kwargs
        for implementation in implementations("conv2d_q8"):
            result = implementation(x, weight, w_scales, bias, **placed)
            if result is not NotImplemented:
                return result if isinstance(result, Packed) else np.asarray(result)
    return run_conv2d_q8(x, weight, w_scales, bias, packed=packed, im2col_variant=im2col_variant,
                         gemm_variant=gemm_variant, matrix=matrix, **kwargs).result


def _device_resident(x: Any) -> bool:
    return isinstance(x, Packed) and x.on_device
