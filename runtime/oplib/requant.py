"""The requantization contract every int8 op shares, on the host: checked parameters and their storage.

acc = sum (x - x_zp) * w; y = acc * x_scale * w_scales[oc] + bias[oc]; relu if asked;
q = clamp(roundEven(y / out_scale) + out_zp, -128, 127), computed in float32 on the device
(templates/include/epilogue.glsl.j2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.manifest import Manifest, VariantEntry
from runtime.oplib import validate
from runtime.oplib.conv import activation_code

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
