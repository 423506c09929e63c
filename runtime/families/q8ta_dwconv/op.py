"""Host side of the direct int8 depthwise conv2d: check arguments, pick the variant, pack, dispatch.

Besides the op: :func:`conv2d_q8_depthwise`, the family's implementation of ``conv2d_q8`` (the op
asks it first and falls back to im2col + GEMM when it declines), and :func:`time_against_im2col`,
which the bench can call to compare the two on a depthwise shape (:data:`MOBILENETV2_DW`).

The requantization checks are those every int8 op shares (runtime/oplib/requant.py); the input
handling (int8 NCHW packed in conv2d_q8's default layout, or a runtime.Packed) is conv2d_q8's own
(runtime/oplib/conv.py int8_input), so a call routed here lays x out as conv2d_q8 would.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.oplib import conv as common
from runtime.oplib import validate
from runtime.oplib.conv import INT8_LAYOUT as DEFAULT_LAYOUT
from runtime.oplib.conv import ConvGeometry, check_limits, conv_push, device_of, int8_input, workgroups
from runtime.oplib.conv_output import OUTPUT_LAYOUT as OUTPUT_LAYOUT
from runtime.oplib.conv_output import ConvResult, conv_placement, deliver_4c
from runtime.oplib.elementwise import run_into
from runtime.oplib.requant import MAX_K, Requant, check_requant, check_storage, requant_bindings, scale_dtype
from runtime.oplib.variants import layout_scale_entry

# The output (OUTPUT_LAYOUT): the 4c layout of (N, C, H_out, W_out), word ((n*H_out + ho)*W_out + wo)*C4 + c/4,
# byte c%4, the layout of every device-resident conv result (runtime/oplib/conv_output.py)
# threads below which a dispatch is assumed not to fill a large GPU (132 SMs x 512 resident threads):
# there the variant with more, smaller tiles is preferred
FILL_THREADS = 1 << 16


@dataclass
class DwconvRun(ConvResult):
    """One execution, with what tests and the bench want besides the output."""

    result: np.ndarray | Packed  # what the op returns: int8 (N, C, H_out, W_out), or a 4c Packed (see `packed`)
    variant: str
    geometry: ConvGeometry
    seconds: list[float] | None = None  # GPU time of the dispatch (timestamps=True)


def dw_geometry(x_shape: tuple[int, int, int, int], weight: Any, *, stride: Any, padding: Any,
                dilation: Any) -> ConvGeometry:
    """Check the weight and the conv parameters; ValueError/TypeError naming the argument."""
    weight = validate.int8_array(weight, "weight", 4)
    C = x_shape[1]
    if weight.shape[:2] != (C, 1):
        raise ValueError(f"weight.shape={weight.shape} must be (C={C}, 1, KH, KW) for x.shape={x_shape}: "
                         "a depthwise conv has one KH x KW filter per channel")
    geom = common.conv_geometry(x_shape, weight.shape, stride=stride, padding=padding, dilation=dilation, groups=C)
    if geom.KH * geom.KW > MAX_K:
        raise ValueError(f"weight.shape={weight.shape}: {geom.KH * geom.KW} taps exceed {MAX_K}, "
                         "where int32 accumulators could overflow")
    return geom


def pack_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights as [KH*KW][C4] int32 words (byte j = channel 4*c4 + j, 0 past C) and per-channel sums."""
    C, _, KH, KW = weight.shape
    taps = np.zeros((KH * KW, 4 * -(-C // 4)), np.int8)
    taps[:, :C] = weight.reshape(C, KH * KW).T
    wsum = weight.astype(np.int64).sum(axis=(1, 2, 3)).astype(np.int32)
    return taps.view("<i4").reshape(-1), wsum


def _entry(manifest: Manifest, dev: Device, layout: str, scales: str, geom: ConvGeometry,
           forced: str | None) -> VariantEntry:
    C4 = -(-geom.C_in // 4)
    rows = geom.N * geom.H_out

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        tw, (wx, wy, _) = axes["tile"]["w"], entry.local_size
        tiles = -(-geom.W_out // tw)
        # outputs the dispatched threads compute per output wanted, in tenths (idle lanes, tile overhang)
        padded = -(-C4 // wx) * wx * -(-tiles // wy) * wy * tw
        waste = round(10 * padded / (C4 * geom.W_out))
        # a dispatch too small to fill the device wants more threads (smaller tiles); else larger tiles
        fills = C4 * tiles * rows >= FILL_THREADS
        # among equally good variants the scales' own dtype first
        return (axes.get("input_layout") == "generic", axes.get("dtype") != scales, waste,
                -tw if fills else tw, -wx)

    return layout_scale_entry(manifest, dev, role="dwconv", layout=layout, scales=scales, forced=forced,
                              preference=preference)


def dwconv_step(dev: Device, manifest: Manifest, entry: VariantEntry, layout: Layout, geom: ConvGeometry,
                x_data: np.ndarray | Buffer, w_words: np.ndarray, wsum: np.ndarray, rq: Requant,
                out: Buffer) -> Step:
    """The one dispatch: x in `layout` -> the 4c output in `out`."""
    g, tw = geom, entry.axes["tile"]["w"]
    spec, buffers = requant_bindings(manifest, entry, rq, out, x_data, w_words, wsum, layout=layout,
                                     shape=(g.N, g.C_in, g.H, g.W))
    C4, tiles = -(-g.C_in // 4), -(-g.W_out // tw)
    push = {
        **conv_push(g, out_geom=(g.W_out, g.H_out, C4, tiles)),
        "zp": (rq.x_zp, rq.out_zp),
        "scales": (rq.x_scale, rq.out_scale),
    }
    lx, ly, _ = entry.local_size
    _, max_y, max_z = dev.info.limits["maxComputeWorkGroupCount"]
    # rows and width tiles are grid-strided in the shader: capping their workgroup counts loses nothing
    groups = (workgroups(C4, lx), min(workgroups(tiles, ly), int(max_y)), min(g.N * g.H_out, int(max_z)))
    return Step(dev.pipeline(entry, spec), buffers, push, groups)


def run_dwconv2d_q8(
    x: Any, weight: Any, w_scales: Any, bias: Any, *, x_scale: Any, x_zp: Any, out_scale: Any, out_zp: Any,
    stride: Any = 1, padding: Any = 0, dilation: Any = 1, activation: Any = "none", input_layout: Any = None,
    packed: Any = None, variant: str | None = None, device: Device | None = None, guard: bool = False,
    timestamps: bool = False, pad_garbage: np.random.Generator | None = None,
) -> DwconvRun:
    """dwconv2d_q8 with the knobs tests and benchmarks need: guard bands around the output, GPU
    timestamps, garbage (from `pad_garbage`) in the padding bytes of the packed input. Only the output
    buffer can outlive the call (as a device-resident result); the uploaded weights are freed."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    geom = dw_geometry(xin.shape, weight, stride=stride, padding=padding, dilation=dilation)
    rq = check_requant(w_scales, bias, geom.C_in, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    dev = device_of(device)
    where = conv_placement(packed, xin, dev)
    entry = _entry(manifest, dev, xin.layout.name, scale_dtype(rq), geom, variant)
    check_storage(manifest, entry, rq)
    C4 = -(-geom.C_in // 4)
    out_shape = (geom.N, geom.C_in, geom.H_out, geom.W_out)
    out_bytes = 4 * OUTPUT_LAYOUT.words(out_shape)
    check_limits(dev, {"x": 4 * xin.layout.words(xin.shape), "weight": 4 * geom.KH * geom.KW * C4,
                       "output": out_bytes})
    x_data = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    w_words, wsum = pack_weights(weight)
    out_buf = dev.alloc(out_bytes, guard=guard)
    seconds = run_into(dev, out_buf, lambda: dwconv_step(dev, manifest, entry, xin.layout, geom, x_data, w_words,
                                                         wsum, rq, out_buf),
                       f"{entry.name} output", guard=guard, timestamps=timestamps)
    # out_buf is freed here unless it is the device-resident result (then the result owns it)
    return DwconvRun(deliver_4c(out_buf, out_shape, where), entry.name, geom, seconds)


def dwconv2d_q8(
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
    activation: str = "none",
    input_layout: str | None = None,
    packed: bool | None = None,
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray | Packed:
    """Quantized int8 depthwise conv2d on the Vulkan device; returns int8 (N, C, H_out, W_out).

    weight is int8 (C, 1, KH, KW): channel c of the output is channel c of x convolved with
    weight[c, 0] (conv2d_q8 with groups = C_in = C_out). x is int8 logical NCHW, packed on the host in
    `input_layout` (default "4w4c"), or a tensor already packed with ``runtime.pack(x, layout)``.
    The requantization is conv2d_q8's: acc = sum over taps of (x - x_zp) * w (padding taps add 0);
    y = acc * x_scale * w_scales[c] + bias[c]; ReLU if asked; q = clamp(round(y / out_scale) + out_zp,
    -128, 127). `variant` forces a q8ta_dwconv variant by name; None picks one by layout, scale dtype,
    shape and device features.
    Result: an int8 NCHW array; a device-resident Packed in the 4c layout when x is one (written there
    by the kernel, never read back), ``packed=True`` / ``False`` ask for a Packed (on the host unless x
    is on the device) / an array whatever x is. A device result owns its buffer (it lives as long as
    the Packed); the call's other buffers are freed when it returns.
    """
    return run_dwconv2d_q8(x, weight, w_scales, bias, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                           out_zp=out_zp, stride=stride, padding=padding, dilation=dilation, activation=activation,
                           input_layout=input_layout, packed=packed, variant=variant, device=device).result


# --- conv2d_q8, served by the direct kernel -------------------------------------------------------

_DWCONV_ARGS = frozenset(inspect.signature(dwconv2d_q8).parameters) - {"variant"}


def _channels(x: Any) -> int | None:
    """C of an int8 x (array or packed), or None for anything else (conv2d_q8 then reports it)."""
    if isinstance(x, Packed):
        return x.shape[1] if x.dtype == np.int8 else None
    if isinstance(x, np.ndarray) and x.dtype == np.int8 and x.ndim == 4:
        return int(x.shape[1])
    return None


def conv2d_q8_depthwise(x: Any, weight: Any, w_scales: Any, bias: Any, *, groups: Any = 1,
                        **kwargs: Any) -> Any:
    """The ``implements["conv2d_q8"]`` entry: conv2d_q8's arguments; its result (the int8 NCHW output,
    or a 4c Packed as `packed` and x ask), or NotImplemented unless groups = C_in = C_out (depthwise
    multiplier 1). Anything malformed in x, weight or groups is declined too, so conv2d_q8 reports it
    in its own words.

    When is the direct kernel faster? On every depthwise conv, for now: with one channel per group,
    im2col pads each tap's channel to a word (4x the bytes of x per tap, written out and read back)
    and the GEMM pads each group's single output channel to 4, so it does 16x the multiply-adds of
    the direct loop, which reads each input word from cache once per tap and writes the output
    once. It won on every MobileNetV2 depthwise layer measured (docs/adding-a-family.md has the
    numbers). A tuning cache keyed on the shape will replace this rule.
    """
    C = _channels(x)
    depthwise = (
        C is not None and isinstance(groups, int) and not isinstance(groups, bool) and groups == C
        and isinstance(weight, np.ndarray) and weight.dtype == np.int8 and weight.ndim == 4
        and weight.shape[:2] == (C, 1)
    )
    if not depthwise or set(kwargs) - _DWCONV_ARGS:
        return NotImplemented
    return dwconv2d_q8(x, weight, w_scales, bias, **kwargs)


# --- what the bench calls -------------------------------------------------------------------------


@dataclass(frozen=True)
class DwShape:
    """One depthwise conv: C channels of an H x W input, K x K kernel, 'same' padding K // 2."""

    name: str
    C: int
    H: int
    W: int
    stride: int = 1
    K: int = 3
    N: int = 1


# MobileNetV2 (224 x 224 input, batch 1): its 17 depthwise convs are 3x3 with these 10 distinct shapes
MOBILENETV2_DW: tuple[DwShape, ...] = (
    DwShape("mnv2.dw32@112", 32, 112, 112),
    DwShape("mnv2.dw96@112s2", 96, 112, 112, 2),
    DwShape("mnv2.dw144@56", 144, 56, 56),
    DwShape("mnv2.dw144@56s2", 144, 56, 56, 2),
    DwShape("mnv2.dw192@28", 192, 28, 28),
    DwShape("mnv2.dw192@28s2", 192, 28, 28, 2),
    DwShape("mnv2.dw384@14", 384, 14, 14),
    DwShape("mnv2.dw576@14", 576, 14, 14),
    DwShape("mnv2.dw576@14s2", 576, 14, 14, 2),
    DwShape("mnv2.dw960@7", 960, 7, 7),
)


@dataclass(frozen=True)
class DwTiming:
    """Median GPU seconds of the direct kernel and of conv2d_q8's im2col + GEMM on one shape."""

    shape: DwShape
    dwconv_s: float
    im2col_gemm_s: float
    dwconv_variant: str
    im2col_variant: str
    gemm_variant: str

    @property
    def speedup(self) -> float:
        """im2col + GEMM time over direct time (> 1: the direct kernel is faster)."""
        return self.im2col_gemm_s / self.dwconv_s


def time_against_im2col(shape: DwShape, *, reps: int = 5, input_layout: str = DEFAULT_LAYOUT,
                        device: Device | None = None, seed: int = 0) -> DwTiming:
    """Time both paths on `shape` with GPU timestamps: one warm-up run each, then the median of `reps`
    (im2col + GEMM: the sum of its two dispatches). Both pick their variants as the ops would."""
    reps = validate.positive_int(reps, "reps")
    rng = np.random.default_rng(seed)
    s = shape
    call: dict[str, Any] = {
        "x": rng.integers(-128, 128, (s.N, s.C, s.H, s.W), dtype=np.int8),
        "weight": rng.integers(-128, 128, (s.C, 1, s.K, s.K), dtype=np.int8),
        "w_scales": rng.uniform(0.001, 0.02, s.C).astype(np.float32),
        "bias": rng.standard_normal(s.C).astype(np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2, "stride": s.stride, "padding": s.K // 2,
        "activation": "relu", "input_layout": input_layout, "device": device_of(device),
    }
    direct, im2col = [], []
    for _ in range(reps + 1):  # interleaved, so a drifting clock or load weighs on both alike
        direct.append(run_dwconv2d_q8(**call, timestamps=True))
        im2col.append(run_conv2d_q8(**call, groups=s.C, timestamps=True))
    return DwTiming(
        shape,
        median(sum(r.seconds or ()) for r in direct[1:]),
        median(sum(r.seconds or ()) for r in im2col[1:]),
        direct[0].variant, im2col[0].im2col_variant, im2col[0].gemm_variant,
    )
