"""The requantization contract every int8 op shares, on the host: checked parameters and their storage.

acc = sum (x - x_zp) * w; y = acc * x_scale * w_scales[oc] + bias[oc]; relu if asked;
q = clamp(roundEven(y / out_scale) + out_zp, -128, 127), computed in float32 on the device
(templates/include/epilogue.glsl.j2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry
from runtime.oplib import validate
from runtime.oplib.conv import activation_code, metadata

# |sum of (x - x_zp) * w| <= K * 255 * 128 must stay inside int32 accumulators
MAX_K = (2**31 - 1) // (255 * 128)


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


def scale_arrays(manifest: Manifest, entry: VariantEntry, rq: Requant) -> tuple[np.ndarray, np.ndarray]:
    """w_scales and bias (zeros when None) in the variant's scale storage type, for bindings 4 and 5."""
    np_scale = np.dtype(manifest.dtypes[entry.axes["dtype"]]["numpy"])
    bias = np.zeros(rq.w_scales.shape[0]) if rq.bias is None else rq.bias
    return rq.w_scales.astype(np_scale), bias.astype(np_scale)


def scale_dtypes_for(requested: str) -> tuple[str, ...]:
    """Scale storage types that serve `requested`: float16 scales widen exactly to float32, so a
    float32 variant serves them where the device lacks the 16-bit features."""
    return ("float16", "float32") if requested == "float16" else (requested,)


def scale_reason(axes: Mapping[str, Any], scale_dtype: str) -> str | None:
    """Why a variant (its `dtype` axis: how it stores the scales) cannot take scales of `scale_dtype`, or None."""
    return None if axes.get("dtype") in scale_dtypes_for(scale_dtype) else "other scale dtype"


def requant_bindings(
    manifest: Manifest, entry: VariantEntry, rq: Requant, out: Any, data: Any, w_words: Any, wsum: Any, *,
    layout: Layout | None = None, shape: tuple[int, ...] | None = None,
) -> tuple[dict[str, int], dict[str | int, Any]]:
    """Spec constants and bindings every int8 requantizing kernel shares: 0 the output words, 1 its input
    (x, or an im2col matrix), 2 the packed weights, 3 their sums, 4 and 5 w_scales and bias in the
    variant's scale storage type; spec constant ACTIVATION. A variant that reads x's layout as data
    (a LAYOUT_HASH spec constant: the generic templates) also gets LAYOUT_HASH and binding 6, the
    BufferMetadata of `layout` for `shape`."""
    scales, bias = scale_arrays(manifest, entry, rq)
    buffers: dict[str | int, Any] = {0: out, 1: data, 2: w_words, 3: wsum, 4: scales, 5: bias}
    spec = {"ACTIVATION": rq.activation}
    if layout is not None and entry.spec_constant("LAYOUT_HASH"):
        if shape is None:
            raise ValueError(f"{entry.name} reads x's layout as data: binding 6 needs x's shape")
        spec["LAYOUT_HASH"] = layout.hashed_i32()
        buffers[6] = metadata(layout, shape)
    return spec, buffers


def requant_push(rq: Requant, OCg4: int, groups: int) -> dict[str, tuple[Any, ...]]:
    """The push-constant members `dims2` and `scales` of the int8 GEMM-like kernels
    (templates/include/gemm_q8.glsl.j2, q8ta_igemm, q8ta_convt)."""
    return {"dims2": (OCg4, groups, rq.x_zp, rq.out_zp), "scales": (rq.x_scale, rq.out_scale, 0.0, 0.0)}
