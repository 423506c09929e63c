"""Host side of int8 conv_transpose2d: check arguments, pick a variant, pack the weights, dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.errors import LimitExceededError
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.oplib import validate
from runtime.oplib.conv import INT32_MAX, ConvInput, check_limits, device_of, int8_input, workgroups
from runtime.oplib.gemm_formats import matrix_to_nchw, unpack_output_4c
from runtime.oplib.requant import Requant, check_requant, check_storage, requant_bindings, requant_push, scale_dtype
from runtime.oplib.variants import layout_scale_entry

from .geometry import ConvTGeometry, convt_geometry

ROLE = "convt"


@dataclass
class ConvTRun:
    """The output and what served it, for tests and benchmarks."""

    output: np.ndarray
    variant: str
    geometry: ConvTGeometry
    seconds: list[float] | None = None


def pack_weights(weight: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The weight (C_in, OCg, KH, KW) as [G][KH][KW][Cg4][OCg4] ivec4 (int32 words: int e of an ivec4 is
    output channel 4*oc4+e, byte b input channel 4*c4+b, 0 past Cg / OCg) and the tap sums
    [G][KH][KW][OCg4*4] int32 (sum over the group's input channels)."""
    c_in, ocg, kh, kw = weight.shape
    cg = c_in // groups
    cg4, ocg4 = -(-cg // 4), -(-ocg // 4)
    padded = np.zeros((groups, cg4 * 4, ocg4 * 4, kh, kw), np.int8)
    padded[:, :cg, :ocg] = weight.reshape(groups, cg, ocg, kh, kw)
    taps = padded.reshape(groups, cg4, 4, ocg4 * 4, kh, kw).transpose(0, 4, 5, 1, 3, 2)  # (G, KH, KW, Cg4, OC, 4)
    words = np.ascontiguousarray(taps).view("<i4").astype(np.int32).reshape(-1)
    sums = padded.sum(axis=1, dtype=np.int32).transpose(0, 2, 3, 1)  # (G, KH, KW, OCg4*4)
    return words, np.ascontiguousarray(sums).reshape(-1)


def convt_entry(
    manifest: Manifest, device: Device, layout: str, OCg: int, scale_dtype: str, forced: str | None
) -> VariantEntry:
    """The variant for input in `layout` and `OCg` output channels per group; `forced` names one."""

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        tc = axes["tile"]["c"]
        # output channel lanes a thread computes for nothing; among equals the wider tile (more reuse of x)
        idle = -(-OCg // tc) * tc - OCg
        return (axes["input_layout"] == "generic", axes["dot"] != "dot", axes["dtype"] != scale_dtype, idle, -tc)

    return layout_scale_entry(manifest, device, role=ROLE, layout=layout, scales=scale_dtype, forced=forced,
                              preference=preference)


def workgroup_count(dev: Device, entry: VariantEntry, geom: ConvTGeometry) -> tuple[int, int, int]:
    """Workgroups along (output row x column tile: grid-stride, capped at the device's limit), output
    channel tiles, groups; ValueError where the device or the shader's int32 indexing cannot cover them."""
    tile = entry.axes["tile"]
    tiles = geom.N * geom.H_out * geom.column_tiles(tile["w"])[1]
    wg_x = entry.local_size[0]
    max_groups = [int(n) for n in dev.info.limits["maxComputeWorkGroupCount"]]
    groups = (min(workgroups(tiles, wg_x), max_groups[0]), workgroups(geom.OCg, tile["c"]), geom.groups)
    if tiles + groups[0] * wg_x > INT32_MAX:
        raise ValueError(f"x.shape={(geom.N, geom.C_in, geom.H, geom.W)}: {tiles} output tiles exceed the shader's "
                         "int32 indexing")
    for axis, what in ((1, f"output channel tiles of {tile['c']}"), (2, "groups")):
        if groups[axis] > max_groups[axis]:
            raise LimitExceededError(f"maxComputeWorkGroupCount[{axis}]", groups[axis], max_groups[axis],
                                     f"conv_transpose2d_q8 {what}")
    return groups


def convt_step(
    dev: Device, manifest: Manifest, entry: VariantEntry, geom: ConvTGeometry, xin: ConvInput, x_data: Any,
    w_words: np.ndarray, tap_sums: np.ndarray, rq: Requant, out: Any,
) -> Step:
    """The dispatch: x (packed in xin.layout) -> [G][M][OCg4] int8 words in `out`."""
    per_class, per_row = geom.column_tiles(entry.axes["tile"]["w"])
    rows = geom.N * geom.H_out
    groups = workgroup_count(dev, entry, geom)
    spec, buffers = requant_bindings(manifest, entry, rq, out, x_data, w_words, tap_sums, layout=xin.layout,
                                     shape=xin.shape)
    (sh, sw), (ph, pw), (dh, dw) = geom.stride, geom.padding, geom.dilation
    push = {
        "dims": (geom.M, per_row, rows, geom.OCg),
        **requant_push(rq, geom.OCg4, geom.groups),
        "in_whcn": (geom.W, geom.H, geom.C_in, geom.N),
        "out_geom": (geom.W_out, geom.H_out, geom.groups, geom.Cg),
        "axis_w": (sw, pw, dw // sw, dw % sw),
        "axis_h": (sh, ph, dh // sh, dh % sh),
        "kernel": (geom.KW, geom.KH, geom.Cg4, per_class),
    }
    return Step(dev.pipeline(entry, spec), buffers, push, groups)


def run_conv_transpose2d_q8(
    x: Any, weight: Any, w_scales: Any, bias: Any, *, x_scale: Any, x_zp: Any, out_scale: Any, out_zp: Any,
    stride: Any = 1, padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: Any = 1,
    activation: Any = "none", input_layout: Any = None, variant: str | None = None, device: Device | None = None,
    guard: bool = False, timestamps: bool = False, pad_garbage: np.random.Generator | None = None,
) -> ConvTRun:
    """conv_transpose2d_q8 with the knobs tests and benchmarks need (guard bands, garbage in the input
    layout's padding bytes, timing, the variant used)."""
    manifest = load_manifest()
    xin = int8_input(x, input_layout, manifest)
    weight = validate.int8_array(weight, "weight", 4)
    geom = convt_geometry(xin.shape, weight.shape, stride=stride, padding=padding, output_padding=output_padding,
                          dilation=dilation, groups=groups)
    rq = check_requant(w_scales, bias, geom.C_out, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale, out_zp=out_zp,
                       activation=activation)
    dev = device_of(device)
    entry = convt_entry(manifest, dev, xin.layout.name, geom.OCg, scale_dtype(rq), variant)
    check_storage(manifest, entry, rq)
    check_limits(dev, {"x": 4 * xin.layout.words(xin.shape), "weight": geom.weight_bytes, "output": geom.out_bytes})
    workgroup_count(dev, entry, geom)
    w_words, tap_sums = pack_weights(weight, geom.groups)
    x_data = xin.data(None if pad_garbage is not None else 0, pad_garbage)
    with dev.alloc(geom.out_bytes, guard=guard) as out_buf:
        step = convt_step(dev, manifest, entry, geom, xin, x_data, w_words, tap_sums, rq, out_buf)
        seconds = dev.run([step], timestamps=timestamps)
        if guard:
            out_buf.check_guards(f"{entry.name} output")
        mat = unpack_output_4c(out_buf.read(np.int32), geom.groups, geom.M, geom.OCg)
    output = np.ascontiguousarray(matrix_to_nchw(mat, geom.N, geom.H_out, geom.W_out))
    return ConvTRun(output, entry.name, geom, seconds)


def conv_transpose2d_q8(
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
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    activation: str = "none",
    input_layout: str | None = None,
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray:
    """Quantized int8 conv_transpose2d on the Vulkan device (PyTorch semantics); int8 (N, C_out, H_out, W_out).

    x: int8 logical NCHW, packed on the host in `input_layout` (None: "4w4c"), or a tensor packed
    with ``runtime.pack(x, layout)`` (its own layout is used). weight: int8 (C_in, C_out/groups, KH, KW).
    H_out = (H-1)*stride - 2*padding + dilation*(KH-1) + output_padding + 1 (the same along W);
    output_padding < max(stride, dilation). acc = sum over the taps that land on an output pixel of
    (x - x_zp) * w; y = acc * x_scale * w_scales[oc] + bias[oc]; ReLU if asked;
    q = clamp(round(y / out_scale) + out_zp, -128, 127). `variant` forces a variant by name.
    """
    return run_conv_transpose2d_q8(
        x, weight, w_scales, bias, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale, out_zp=out_zp, stride=stride,
        padding=padding, output_padding=output_padding, dilation=dilation, groups=groups, activation=activation,
        input_layout=input_layout, variant=variant, device=device,
    ).output
