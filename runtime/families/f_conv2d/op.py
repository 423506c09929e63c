"""Host side of float conv2d as im2col + GEMM: check arguments, pick variants, lay out, dispatch.

The float twin of the q8ta_conv2d family's op, on the same machinery: variants of the `float_im2col` and
`float_gemm` roles (families f_im2col / f_gemm in variants.yaml), the same layouts in element
offsets (runtime/core/layouts.py), the same 4W4C im2col matrix and 4C output with float words. x,
weight and bias are cast to `dtype` (float32 or float16) on the host; the shaders accumulate in
float32 and round to `dtype` once, when they store the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.core.select import check_forced, pick
from runtime.oplib import conv as common
from runtime.oplib import validate
from runtime.oplib.conv import (
    ConvGeometry,
    ConvInput,
    activation_code,
    check_limit,
    check_limits,
    conv_geometry,
    conv_input,
    device_of,
    workgroups,
)
from runtime.oplib.gemm_formats import (
    matrix_float_elements,
    matrix_to_nchw,
    output_float_elements,
    pack_matrix_float,
    pack_weights_float,
    unpack_matrix_float,
    unpack_output_float,
)
from runtime.oplib.variants import input_layout_reason

IM2COL_ROLE = "float_im2col"
GEMM_ROLE = "float_gemm"
DEFAULT_LAYOUT = "contig"


@dataclass
class FloatConvRun:
    """Everything a test or benchmark may want from one execution."""

    output: np.ndarray
    im2col_variant: str
    gemm_variant: str
    geometry: ConvGeometry
    im2col_matrix: np.ndarray | None = None
    seconds: list[float] | None = None


# --- argument checks ---------------------------------------------------------------------------


def dtypes(manifest: Manifest) -> list[str]:
    """The dtypes some float variant of the manifest is built for."""
    return sorted({str(v.axes["dtype"]) for v in manifest.entries(role=GEMM_ROLE)})


def _dtype(manifest: Manifest, name: Any) -> np.dtype:
    validate.choice(name, "dtype", dtypes(manifest))
    return np.dtype(manifest.dtypes[name]["numpy"])


def _index(arr: np.ndarray, flat: int) -> str:
    return ", ".join(str(int(i)) for i in np.unravel_index(flat, arr.shape))


def float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """A float ndarray of rank `ndim` with no zero-size dimension (no copy)."""
    return validate.array(value, name, ndim=ndim, kinds="f", dtype_desc="a float array")


def cast(value: Any, name: str, ndim: int, dtype: np.dtype) -> np.ndarray:
    """A finite float array of rank `ndim`, cast to `dtype`; errors name the first bad element.

    Copies the array: callers check buffer limits first, so an oversized call fails before it.
    """
    arr = float_array(value, name, ndim)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{_index(arr, i)}] is not finite: {float(arr.flat[i])!r}")
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}[{_index(arr, i)}]={float(arr.flat[i])!r} is out of range for dtype={dtype.name!r} "
            f"(largest {float(np.finfo(dtype).max)!r}): it would become {float(out.flat[i])!r}"
        )
    return out


def float_input(x: Any, input_layout: Any, manifest: Manifest, dtype: np.dtype) -> ConvInput:
    """`x` as a float NCHW array to cast and lay out, or already packed as `dtype`."""
    xin = conv_input(x, input_layout, manifest, dtypes=("float16", "float32"), default_layout=DEFAULT_LAYOUT,
                     check_array=lambda a: float_array(a, "x", 4))
    if xin.packed is not None and xin.packed.dtype != dtype:
        raise ValueError(f"x is packed as {xin.packed.dtype}, the call has dtype={dtype.name!r}")
    return xin


def x_elements(xin: ConvInput, dtype: np.dtype, pad_garbage: np.random.Generator | None) -> np.ndarray | Buffer:
    """What the im2col binds for x: the packed data as given, or the array cast and laid out now."""
    if xin.packed is not None:
        return xin.packed.data
    assert xin.array is not None
    xs = cast(xin.array, "x", 4, dtype)
    return xin.layout.pack_elements(xs, pad_value=None if pad_garbage is not None else 0.0, rng=pad_garbage)


# --- variant choice ------------------------------------------------------------------------------


def _dtype_reason(axes: Mapping[str, Any], dtype: str) -> str | None:
    got = axes.get("dtype")
    return None if got == dtype else f"it is built for dtype {got!r}, the call has dtype={dtype!r}"


def im2col_entry(manifest: Manifest, dev: Device, layout: str, dtype: str, forced: str | None) -> VariantEntry:
    """The im2col variant for this layout and dtype: `forced` if given (checked), else the best one."""

    def accepts(axes: Mapping[str, Any]) -> str | None:
        return input_layout_reason(axes, layout) or _dtype_reason(axes, dtype)

    if forced is not None:
        return check_forced(manifest, forced, "im2col_variant", role=IM2COL_ROLE, accepts=accepts,
                            supports=dev.supports)

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        return (axes.get("input_layout") == "generic", axes["wg"]["y"] != 1)

    return pick(manifest, role=IM2COL_ROLE, accepts=accepts, preference=preference, supports=dev.supports,
                what=f"input_layout={layout!r}, dtype={dtype!r}")


def gemm_entry(manifest: Manifest, dev: Device, OCg: int, M: int, dtype: str, forced: str | None) -> VariantEntry:
    """The GEMM variant for this dtype: `forced` if given (checked), else the tile that wastes least."""

    def accepts(axes: Mapping[str, Any]) -> str | None:
        return _dtype_reason(axes, dtype)

    if forced is not None:
        return check_forced(manifest, forced, "gemm_variant", role=GEMM_ROLE, accepts=accepts, supports=dev.supports)

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        tile = entry.axes["tile"]
        waste = (-OCg) % tile["c"] + (-M) % tile["w"]  # wide tiles only when there is work to fill them
        return (waste, -tile["c"] * tile["w"], entry.axes["wg"]["x"])

    return pick(manifest, role=GEMM_ROLE, accepts=accepts, preference=preference, supports=dev.supports,
                what=f"dtype={dtype!r}")


# --- dispatches ----------------------------------------------------------------------------------


def im2col_step(
    dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, x_elems: np.ndarray | Buffer, out: Buffer
) -> Step:
    """The float im2col dispatch: x laid out in `layout` (element offsets) -> 4W4C float matrix in `out`."""
    return common.im2col_step(dev, entry, layout, geom, x_elems, out)


def gemm_step(
    dev: Device, entry: VariantEntry, G: int, M: int, K4: int, OCg: int, a: Buffer | np.ndarray,
    w_elems: np.ndarray, bias: np.ndarray, activation: int, out: Buffer,
) -> Step:
    """The GEMM + bias + activation dispatch: 4W4C matrix `a` -> [G][M][OCg4] float words in `out`."""
    M4, OCg4 = -(-M // 4), -(-OCg // 4)
    push = {"dims": (M, M4, K4, OCg), "dims2": (OCg4, G)}
    # the template states the outputs one workgroup covers (see common.dispatch_block)
    block = entry.declared
    pipe = dev.pipeline(entry, {"ACTIVATION": activation})
    groups = (workgroups(M, block["DISPATCH_BLOCK_M"]), workgroups(OCg, block["DISPATCH_BLOCK_N"]), G)
    return Step(pipe, {0: out, 1: a, 2: w_elems, 3: bias}, push, groups)


def _bias(bias: Any, C_out: int, dtype: np.dtype) -> np.ndarray:
    if bias is None:
        return np.zeros(C_out, dtype)
    arr = float_array(bias, "bias", 1)
    if arr.shape != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},) (one per output channel), got {arr.shape}")
    return cast(arr, "bias", 1, dtype)


# --- runs ----------------------------------------------------------------------------------------


def run_im2col_float(
    x: Any, KH: int, KW: int, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1,
    input_layout: Any = None, dtype: Any = "float32", variant: str | None = None, device: Device | None = None,
    guard: bool = False, pad_garbage: np.random.Generator | None = None,
) -> tuple[np.ndarray, str]:
    """Run only im2col; returns the (G, M, Kp) matrix of `dtype` and the variant name.

    `pad_garbage` fills the layout's padding slots with NaN / inf / huge values instead of 0.
    """
    manifest = load_manifest()
    np_dtype = _dtype(manifest, dtype)
    xin = float_input(x, input_layout, manifest, np_dtype)
    layout = xin.layout
    groups = validate.positive_int(groups, "groups")
    # im2col depends on the kernel's shape only
    geom = conv_geometry(xin.shape, (groups, max(1, xin.shape[1] // groups), KH, KW), stride=stride,
                         padding=padding, dilation=dilation, groups=groups)
    dev = device_of(device)
    entry = im2col_entry(manifest, dev, layout.name, np_dtype.name, variant)
    a_bytes = matrix_float_elements(geom.groups, geom.M, geom.Kp) * np_dtype.itemsize
    check_limit(dev, "im2col matrix of x", a_bytes)
    x_elems = x_elements(xin, np_dtype, pad_garbage)
    with dev.alloc(a_bytes, guard=guard) as a_buf:
        dev.run([im2col_step(dev, entry, layout, geom, x_elems, a_buf)])
        if guard:
            a_buf.check_guards(f"{entry.name} output (im2col matrix)")
        elems = a_buf.read(np_dtype)
    return unpack_matrix_float(elems, geom.groups, geom.M, geom.Kp), entry.name


def run_gemm_float(
    a: np.ndarray, weight: Any, bias: Any, *, groups: int, activation: Any = "none", dtype: Any = "float32",
    variant: str | None = None, device: Device | None = None, guard: bool = False,
) -> tuple[np.ndarray, str]:
    """Run only the GEMM on an im2col matrix a (G, M, Kp); returns (G, M, OCg) of `dtype` and the variant."""
    manifest = load_manifest()
    np_dtype = _dtype(manifest, dtype)
    a_cast = cast(a, "a", 3, np_dtype)
    w = cast(weight, "weight", 4, np_dtype)
    G, M, Kp = a_cast.shape
    OCg = w.shape[0] // groups
    b = _bias(bias, w.shape[0], np_dtype)
    act = activation_code(activation)
    dev = device_of(device)
    entry = gemm_entry(manifest, dev, OCg, M, np_dtype.name, variant)
    out_bytes = output_float_elements(G, M, OCg) * np_dtype.itemsize
    with dev.alloc(out_bytes, guard=guard) as out_buf:
        step = gemm_step(dev, entry, G, M, Kp // 4, OCg, pack_matrix_float(a_cast), pack_weights_float(w, groups), b,
                         act, out_buf)
        dev.run([step])
        if guard:
            out_buf.check_guards(f"{entry.name} output")
        elems = out_buf.read(np_dtype)
    return unpack_output_float(elems, G, M, OCg), entry.name


def run_conv2d_float(
    x: Any,
    weight: Any,
    bias: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    activation: Any = "none",
    input_layout: Any = None,
    dtype: Any = "float32",
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    device: Device | None = None,
    guard: bool = False,
    keep_im2col: bool = False,
    timestamps: bool = False,
    pad_garbage: np.random.Generator | None = None,
) -> FloatConvRun:
    """conv2d_float with the knobs tests and benchmarks need (guard bands, intermediates, timing)."""
    manifest = load_manifest()
    np_dtype = _dtype(manifest, dtype)
    xin = float_input(x, input_layout, manifest, np_dtype)
    layout = xin.layout
    w_in = float_array(weight, "weight", 4)
    geom = conv_geometry(xin.shape, w_in.shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    b = _bias(bias, geom.C_out, np_dtype)
    act = activation_code(activation)
    dev = device_of(device)
    im2col = im2col_entry(manifest, dev, layout.name, np_dtype.name, im2col_variant)
    gemm = gemm_entry(manifest, dev, geom.OCg, geom.M, np_dtype.name, gemm_variant)

    size = np_dtype.itemsize
    a_bytes = matrix_float_elements(geom.groups, geom.M, geom.Kp) * size
    out_bytes = output_float_elements(geom.groups, geom.M, geom.OCg) * size
    check_limits(dev, {"x": layout.slots(xin.shape) * size, "weight": geom.groups * geom.Kp * geom.OCg * size,
                       "im2col matrix of x": a_bytes, "output": out_bytes})
    x_elems = x_elements(xin, np_dtype, pad_garbage)
    w = cast(w_in, "weight", 4, np_dtype)
    w_elems = pack_weights_float(w, geom.groups)

    with dev.alloc(a_bytes, guard=guard) as a_buf, dev.alloc(out_bytes, guard=guard) as out_buf:
        steps = [
            im2col_step(dev, im2col, layout, geom, x_elems, a_buf),
            gemm_step(dev, gemm, geom.groups, geom.M, geom.K4, geom.OCg, a_buf, w_elems, b, act, out_buf),
        ]
        seconds = dev.run(steps, timestamps=timestamps)
        if guard:
            a_buf.check_guards(f"{im2col.name} output (im2col matrix)")
            out_buf.check_guards(f"{gemm.name} output")
        mat = unpack_output_float(out_buf.read(np_dtype), geom.groups, geom.M, geom.OCg)  # (G, M, OCg)
        matrix = unpack_matrix_float(a_buf.read(np_dtype), geom.groups, geom.M, geom.Kp) if keep_im2col else None
    output = np.ascontiguousarray(matrix_to_nchw(mat, geom.N, geom.H_out, geom.W_out))
    return FloatConvRun(output, im2col.name, gemm.name, geom, matrix, seconds)


def conv2d_float(
    x: np.ndarray | Packed,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    activation: str = "none",
    input_layout: str | None = None,
    dtype: str = "float32",
    im2col_variant: str | None = None,
    gemm_variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray:
    """Float conv2d on the Vulkan device; returns an array of `dtype`, shape (N, C_out, H_out, W_out).

    x (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW) and bias (C_out,) or None are float arrays,
    cast to `dtype` ("float32" or "float16") first; x is laid out in `input_layout` (default
    "contig"), or is a tensor already packed as `dtype` with ``runtime.pack`` (its layout is used).
    y = sum over taps of x * w + bias, accumulated in float32; ReLU if asked. A variant left as None
    is picked by layout, dtype and device features; a name forces it.
    """
    return run_conv2d_float(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, activation=activation,
        input_layout=input_layout, dtype=dtype, im2col_variant=im2col_variant, gemm_variant=gemm_variant,
        device=device,
    ).output
