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
from runtime.oplib.q8_checks import first_mismatch as _first_mismatch
from runtime.oplib.q8_checks import int8_values as _values
from runtime.oplib.q8_checks import scales_and_bias

from . import oracle as reference
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
    x_scale = case.get("x_scale", 0.05)
    _, exact = reference.conv2d_q8_reference(
        x, weight, w_scales, bias, x_scale=x_scale, x_zp=case["x_zp"], out_scale=1.0, out_zp=0,
        activation=case.get("activation", "none"), **conv,
    )
    peak = float(np.max(np.abs(exact))) or 1.0
    out_scale = peak / 127.0 * case.get("out_scale_factor", 1.0)
    kwargs = dict(conv, x_scale=x_scale, x_zp=case["x_zp"], out_scale=out_scale, out_zp=case["out_zp"],
                  activation=case.get("activation", "none"))
    return Inputs(x, weight, w_scales, bias, kwargs)


def _prepare(variant: str, case: dict[str, Any]) -> tuple[dict[str, Any], Inputs, np.random.Generator]:
    entry = load_manifest().variant(variant)
    if entry.role == "gemm":
        case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    return case, materialize(case), np.random.default_rng(case["seed"] + 1)


def check_im2col(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """im2col alone, exact on every real-channel column, input padding bytes filled with garbage."""
    case, inp, garbage = _prepare(variant, case)
    kw = inp.kwargs
    got, name = run_im2col_q8(
        inp.x, case["KH"], case["KW"], stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"],
        groups=kw["groups"], x_zp=kw["x_zp"], input_layout=case["layout"], variant=variant, device=device,
        guard=True, pad_garbage=garbage,
    )
    want, mask = reference.im2col(inp.x, case["KH"], case["KW"], kw["stride"], kw["padding"], kw["dilation"],
                                  kw["groups"], kw["x_zp"])
    _raise_if("im2col", name, _first_mismatch(got, want, 0, np.broadcast_to(mask, want.shape)))


def check_gemm(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """GEMM alone: exact accumulators through identity requantization, then +-1 after requantization."""
    case, inp, garbage = _prepare(variant, case)
    kw = inp.kwargs
    a, mask = reference.im2col(inp.x, case["KH"], case["KW"], kw["stride"], kw["padding"], kw["dilation"],
                               kw["groups"], kw["x_zp"])
    # padded channel slots may hold anything: fill them with noise the GEMM must ignore
    a = np.where(mask, a, garbage.integers(-128, 128, size=a.shape, dtype=np.int8))
    G = kw["groups"]
    acc = reference.gemm_acc(a, inp.weight, G)
    acc -= kw["x_zp"] * reference.weight_sums(inp.weight).reshape(G, 1, -1)
    ones = np.ones(inp.weight.shape[0], inp.w_scales.dtype)
    got, name = run_gemm_q8(a, inp.weight, ones, None, groups=G, x_scale=1.0, x_zp=kw["x_zp"],
                            out_scale=1.0, out_zp=0, variant=variant, device=device, guard=True)
    problem = _first_mismatch(got, np.clip(acc, -128, 127), 0)
    _raise_if("gemm", name, problem and "accumulators (identity requantization): " + problem)
    got, name = run_gemm_q8(a, inp.weight, inp.w_scales, inp.bias, groups=G, x_scale=kw["x_scale"],
                            x_zp=kw["x_zp"], out_scale=kw["out_scale"], out_zp=kw["out_zp"],
                            activation=kw["activation"], variant=variant, device=device, guard=True)
    want = reference.requantize(acc, kw["x_scale"], inp.w_scales, inp.bias, kw["out_scale"], kw["out_zp"],
                                kw["activation"])
    _raise_if("gemm", name, _first_mismatch(got, want, 1))


def check_conv(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The whole op with this variant forced (the other pass picked automatically), +-1."""
    case, inp, garbage = _prepare(variant, case)
    role = load_manifest().variant(variant).role
    forced: dict[str, Any] = {"im2col_variant": variant} if role == "im2col" else {"gemm_variant": variant}
    run = run_conv2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, input_layout=case["layout"], device=device,
                        guard=True, pad_garbage=garbage, **forced, **inp.kwargs)
    want, _ = reference.conv2d_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.kwargs)
    _raise_if("conv", f"{run.im2col_variant} + {run.gemm_variant}", _first_mismatch(run.output, want, 1))


def _raise_if(level: str, name: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"{level} check of {name} failed: {problem}")


# --- what the generic property tests draw ----------------------------------------------------------


def accepted_layouts(entry: VariantEntry, manifest: Manifest) -> list[str]:
    """The input layouts a variant reads: all of them for a generic im2col (and for a GEMM, which
    reads the im2col matrix whatever the input was), else the one it is specialized for."""
    layout = entry.axes.get("input_layout")
    return sorted(manifest.layouts) if layout in (None, "generic") else [str(layout)]


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import conv_cases  # Hypothesis only where cases are drawn

    return conv_cases(accepted_layouts(entry, manifest))


LEVELS = (
    Level("im2col", ("im2col",), check_im2col, _cases,
          "im2col alone, exact on every real-channel column, garbage in the layout's padding bytes"),
    Level("gemm", ("gemm",), check_gemm, _cases,
          "GEMM alone: exact accumulators through identity requantization, then +-1 after requantization"),
    Level("conv", ROLES, check_conv, _cases, "the whole op with this variant forced, +-1"),
)
