"""Checks of the q8ta_conv2d variants against the family's NumPy oracle (levels im2col, gemm, conv).

A *case* is a small JSON-able dict (shape, conv parameters, quantization parameters, value mode and
seed); `materialize` turns it into arrays deterministically, so a failing case printed as JSON
reruns exactly (`python -m runtime.tools.repro`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib.cells import CONV_CLASSES, GEMM_CLASSES, accepted_layouts, by_axis, classes_of, conv_cells
from runtime.oplib.q8_checks import calibrated_quant, relu_magnitude, requant_mismatch, scales_and_bias, small_operands
from runtime.oplib.q8_checks import first_mismatch as _first_mismatch
from runtime.oplib.q8_checks import int8_values as _values

from . import oracle as reference
from .im2col import matrix_of
from .op import run_conv2d_q8, run_gemm_q8, run_im2col_q8

ROLES = ("im2col", "gemm")


@dataclass
class Inputs:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray | None
    kwargs: dict[str, Any]


def materialize(case: dict[str, Any]) -> Inputs:
    """Arrays of a case. out_scale is `out_scale_factor` times the scale that maps max|y| to 127."""
    rng = np.random.default_rng(case["seed"])
    G = case["groups"]
    x = _values(rng, (case["N"], case["C_in"], case["H"], case["W"]), case.get("x_values", "random"))
    w_shape = (case["C_out"], case["C_in"] // G, case["KH"], case["KW"])
    weight = _values(rng, w_shape, case.get("w_values", "random"))
    w_scales, bias = scales_and_bias(rng, case, case["C_out"])
    conv: dict[str, Any] = {k: tuple(case[k]) if isinstance(case[k], list) else case[k]
                            for k in ("stride", "padding", "dilation", "groups")}
    x_scale, activation = case.get("x_scale", 0.05), case.get("activation", "none")
    _, exact = reference.conv2d_q8_reference(
        x, weight, w_scales, bias, x_scale=x_scale, x_zp=case["x_zp"], out_scale=1.0, out_zp=0,
        activation=activation, **conv,
    )
    return Inputs(x, weight, w_scales, bias, dict(conv, **calibrated_quant(case, exact, x_scale, activation)))


def _prepare(variant: str, case: dict[str, Any]) -> tuple[dict[str, Any], Inputs, np.random.Generator]:
    entry = load_manifest().variant(variant)
    if entry.role == "gemm":
        case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    return case, materialize(case), np.random.default_rng(case["seed"] + 1)


def check_im2col(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """im2col alone, input padding bytes filled with garbage, kernel rows split over threads as the case
    says (`kh_parts`), on the stream path where the case asks (`stream`): native format exact on every
    real-channel column; upstream format exact on every byte (padding pixels and K padding included)."""
    case, inp, garbage = _prepare(variant, case)
    kw = inp.kwargs
    got, name = run_im2col_q8(
        inp.x, case["KH"], case["KW"], stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"],
        groups=kw["groups"], x_zp=kw["x_zp"], input_layout=case["layout"], variant=variant, device=device,
        guard=True, pad_garbage=garbage, kh_parts=case.get("kh_parts"),
        stream=case.get("stream"),
    )
    geometry = (inp.x, case["KH"], case["KW"], kw["stride"], kw["padding"], kw["dilation"], kw["groups"], kw["x_zp"])
    if matrix_of(load_manifest().variant(variant)) == "upstream":
        _raise_if("im2col", name, _first_mismatch(got, reference.im2col_upstream(*geometry), 0))
        return
    want, mask = reference.im2col(*geometry)
    _raise_if("im2col", name, _first_mismatch(got, want, 0, np.broadcast_to(mask, want.shape)))


def requant_terms(acc: np.ndarray, inp: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(scaled, magnitude) of zero-point-corrected accumulators (the oracle's (G, M, OCg) or NCHW):
    scaled = y / out_scale before rounding, magnitude = (|acc * x_scale * w_scale| + |bias|) /
    out_scale, what runtime/oplib/q8_checks.requant_mismatch bounds the float32 error with."""
    kw = inp.kwargs
    pre = reference.requantize_float(acc, kw["x_scale"], inp.w_scales, inp.bias, kw["out_scale"], 0)
    scaled = np.maximum(pre, 0.0) if kw["activation"] == "relu" else pre
    term = reference.requantize_float(acc, kw["x_scale"], inp.w_scales, None, kw["out_scale"], 0)
    bias = None if inp.bias is None else np.abs(inp.bias.astype(np.float64))
    bias_part = reference.requantize_float(np.zeros_like(acc), 1.0, None, bias, kw["out_scale"], 0)
    return scaled, relu_magnitude(pre, np.abs(term) + bias_part, kw["activation"])


def check_gemm(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """GEMM alone, padded channel slots of the matrix full of noise. (1) Small operands through
    identity requantization: every accumulator within int8, compared bit for bit. (2) The same
    accumulators at x_scale = 0.5: every odd one is an exact rounding tie, which roundEven sends
    to the even neighbour (0.5 * w_scale 1 and float(acc) * 0.5 are exact in float32; so is y /
    1.0 on every device we know of, although Vulkan only promises 2.5 ulp for a division).
    (3) The case's values and requantization: exact except within the derived float32 bound of
    a rounding tie (runtime/oplib/q8_checks.py)."""
    case, inp, garbage = _prepare(variant, case)
    kw = inp.kwargs
    G, x_zp = kw["groups"], kw["x_zp"]
    geometry = (case["KH"], case["KW"], kw["stride"], kw["padding"], kw["dilation"], G, x_zp)
    upstream = matrix_of(load_manifest().variant(variant)) == "upstream"
    w_out = _w_out(case, kw)

    def matrix(x: np.ndarray) -> np.ndarray:
        if upstream:
            a = reference.im2col_upstream(x, *geometry)
            mask = _upstream_real(a.shape, case, G, w_out)
        else:
            a, mask = reference.im2col(x, *geometry)
        # padded channel slots (upstream: K padding and padding pixels too) may hold anything: fill them
        # with noise the GEMM must ignore
        return np.where(mask, a, garbage.integers(-128, 128, size=a.shape, dtype=np.int8))

    def accumulators(a: np.ndarray, weight: np.ndarray) -> np.ndarray:
        raw = reference.gemm_acc_upstream(a, weight, G, w_out) if upstream else reference.gemm_acc(a, weight, G)
        return raw - x_zp * reference.weight_sums(weight).reshape(G, 1, -1)

    xs, ws = small_operands(inp.x, inp.weight, x_zp, garbage)
    a_small = matrix(xs)
    acc = accumulators(a_small, ws)
    ones = np.ones(inp.weight.shape[0], inp.w_scales.dtype)
    for what, x_scale, want in (
        ("accumulators (small operands, identity requantization)", 1.0, np.clip(acc, -128, 127)),
        ("rounding ties (small operands, x_scale 0.5)", 0.5,
         reference.requantize(acc, 0.5, None, None, 1.0, kw["out_zp"])),
    ):
        got, name = run_gemm_q8(a_small, ws, ones, None, groups=G, x_scale=x_scale, x_zp=x_zp, out_scale=1.0,
                                out_zp=0 if x_scale == 1.0 else kw["out_zp"], variant=variant, device=device,
                                guard=True, w_out=w_out)
        problem = _first_mismatch(got, want, 0)
        _raise_if("gemm", name, problem and f"{what}: {problem}")

    a = matrix(inp.x)
    acc = accumulators(a, inp.weight)
    got, name = run_gemm_q8(a, inp.weight, inp.w_scales, inp.bias, groups=G, x_scale=kw["x_scale"],
                            x_zp=x_zp, out_scale=kw["out_scale"], out_zp=kw["out_zp"],
                            activation=kw["activation"], variant=variant, device=device, guard=True, w_out=w_out)
    want = reference.requantize(acc, kw["x_scale"], inp.w_scales, inp.bias, kw["out_scale"], kw["out_zp"],
                                kw["activation"])
    _raise_if("gemm", name, requant_mismatch(got, want, *requant_terms(acc, inp), kw["out_zp"]))


def _w_out(case: dict[str, Any], kw: dict[str, Any]) -> int:
    """The case's output width."""
    _, sw = reference.normalize_pair(kw["stride"], "stride")
    _, pw = reference.normalize_pair(kw["padding"], "padding")
    _, dw = reference.normalize_pair(kw["dilation"], "dilation")
    return reference.conv_out_size(case["W"], case["KW"], sw, pw, dw)


def _upstream_real(shape: tuple[int, ...], case: dict[str, Any], groups: int, w_out: int) -> np.ndarray:
    """Which bytes of an (N, H_out, Wp, K) upstream matrix a GEMM reads: real pixels, real k of each group."""
    taps = case["KH"] * case["KW"] * (case["C_in"] // groups)
    k_real = np.arange(shape[3]) % (shape[3] // groups) < taps
    return (np.arange(shape[2]) < w_out)[None, None, :, None] & k_real[None, None, None, :]


def check_conv(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The whole op with this variant forced (the other pass picked automatically): exact except
    within the derived float32 bound of a rounding tie (runtime/oplib/q8_checks.py)."""
    case, inp, garbage = _prepare(variant, case)
    role = load_manifest().variant(variant).role
    forced: dict[str, Any] = {"im2col_variant": variant} if role == "im2col" else {"gemm_variant": variant}
    run = run_conv2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, input_layout=case["layout"], device=device,
                        guard=True, pad_garbage=garbage, **forced, **inp.kwargs)
    want, _ = reference.conv2d_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.kwargs)
    # the zero-point-corrected accumulators: the reference through identity requantization, unrounded
    identity = dict(inp.kwargs, x_scale=1.0, out_scale=1.0, out_zp=0, activation="none")
    _, acc = reference.conv2d_q8_reference(inp.x, inp.weight, np.ones(len(inp.w_scales)), None, **identity)
    _raise_if("conv", f"{run.im2col_variant} + {run.gemm_variant}",
              requant_mismatch(run.output, want, *requant_terms(acc, inp), inp.kwargs["out_zp"]))


def _raise_if(level: str, name: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"{level} check of {name} failed: {problem}")


# --- what the generic property tests draw ----------------------------------------------------------


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import conv_cases  # Hypothesis only where cases are drawn

    return conv_cases(accepted_layouts(entry, manifest))


# im2col has no epilogue: bias + relu means nothing to it
IM2COL_CLASSES = tuple(c for c in CONV_CLASSES if c != "bias_relu")

LEVELS = (
    Level("im2col", ("im2col",), check_im2col, _cases,
          "im2col alone, exact on every real-channel column, garbage in the layout's padding bytes",
          classes_of, conv_cells(_cases, IM2COL_CLASSES)),
    Level("gemm", ("gemm",), check_gemm, _cases,
          "GEMM alone: exact accumulators and exact ties (small operands), then the case's requantization, "
          "exact but for +-1 next to a rounding tie", classes_of, conv_cells(_cases, GEMM_CLASSES)),
    Level("conv", ROLES, check_conv, _cases,
          "the whole op with this variant forced, exact but for +-1 next to a rounding tie",
          classes_of, conv_cells(_cases, by_axis(CONV_CLASSES, GEMM_CLASSES))),
)
