"""Checks of the q8ta_dwconv variants against the family's NumPy oracle (level dwconv).

A *case* is a small JSON-able dict (shape, conv parameters, quantization parameters, value modes,
seed and input layout); `materialize` turns it into arrays deterministically, so a failing case
printed as JSON reruns exactly (`python -m runtime.tools.repro`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib.cells import accepted_layouts, classes_of, conv_cells
from runtime.oplib.q8_checks import (
    accumulator_problem,
    calibrated_quant,
    int8_values,
    requant_problem,
    scales_and_bias,
)

from . import oracle
from .op import run_dwconv2d_q8

ROLES = ("dwconv",)
CONV_KEYS = ("stride", "padding", "dilation")


@dataclass
class Inputs:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray | None
    conv: dict[str, Any]  # stride, padding, dilation
    quant: dict[str, Any]  # x_scale, x_zp, out_scale, out_zp, activation


def materialize(case: dict[str, Any]) -> Inputs:
    """Arrays of a case. out_scale is `out_scale_factor` times the scale that maps max|y| to 127."""
    rng = np.random.default_rng(case["seed"])
    C = case["C"]
    x = int8_values(rng, (case["N"], C, case["H"], case["W"]), case.get("x_values", "random"))
    weight = int8_values(rng, (C, 1, case["KH"], case["KW"]), case.get("w_values", "random"))
    w_scales, bias = scales_and_bias(rng, case, C)
    conv = {k: tuple(case[k]) if isinstance(case[k], list) else case[k] for k in CONV_KEYS}
    x_scale, activation = case.get("x_scale", 0.05), case.get("activation", "none")
    # y before rounding: the oracle's scaled output for out_scale 1
    _, y, _ = oracle.requantize(oracle.dwconv_acc(x, weight, x_zp=case["x_zp"], **conv), x_scale=x_scale,
                                w_scales=w_scales, bias=bias, out_scale=1.0, out_zp=0, activation=activation)
    return Inputs(x, weight, w_scales, bias, conv, calibrated_quant(case, y, x_scale, activation))


def check_dwconv(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The op with `variant` forced, guard bands around the output and garbage in the input layout's
    padding bytes: exact accumulators through identity requantization, then the case's requantization,
    exact but for +-1 next to a rounding tie (runtime/oplib/q8_checks.py)."""
    entry = load_manifest().variant(variant)
    case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    inp = materialize(case)
    garbage = np.random.default_rng(case["seed"] + 1)
    common = dict(inp.conv, input_layout=case["layout"], variant=variant, device=device, guard=True,
                  pad_garbage=garbage)

    x_zp = inp.quant["x_zp"]
    acc = partial(oracle.dwconv_acc, x_zp=x_zp, **inp.conv)
    _raise_if(variant, "accumulators (identity requantization)",
              accumulator_problem(partial(run_dwconv2d_q8, **common), acc, inp.x, inp.weight, x_zp,
                                  np.random.default_rng(case["seed"] + 2), inp.w_scales.dtype))

    got = run_dwconv2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.quant, **common).output
    reference = partial(oracle.dwconv2d_q8_reference, inp.x, inp.weight, inp.w_scales, inp.bias, **inp.conv)
    _raise_if(variant, "requantized output", requant_problem(got, reference, inp.quant))


def _raise_if(variant: str, what: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"dwconv check of {variant} failed: {what}: {problem}")


# --- what the generic property tests draw ----------------------------------------------------------


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import dw_cases  # Hypothesis only where cases are drawn

    return dw_cases(accepted_layouts(entry, manifest))


# depthwise always; no GEMM K
DW_CLASSES = ("stride_w", "dilation", "cin_tail", "m_tail", "batch", "bias_relu", "pad_xzp")

LEVELS = (
    Level("dwconv", ROLES, check_dwconv, _cases,
          "the op with the variant forced: exact accumulators through identity requantization, then exact "
          "requantization but for +-1 next to a rounding tie; "
          "guard bands, garbage in the input layout's padding bytes",
          classes_of, conv_cells(_cases, DW_CLASSES)),
)
