"""Checks of the q8ta_igemm variants against the family's NumPy oracle (level igemm).

A *case* is a small JSON-able dict (shape, conv parameters, quantization parameters, value modes,
seed, input layout and, for templates that split K, `split_k`); `materialize` turns it into arrays
deterministically, so a failing case printed as JSON reruns exactly (`python -m runtime.tools.repro`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib.cells import CONV_CLASSES, classes_of, conv_cells, input_layouts
from runtime.oplib.q8_checks import (
    accumulator_problem,
    calibrated_quant,
    int8_values,
    requant_problem,
    scales_and_bias,
)

from . import oracle
from .op import k_step, run_igemm_conv2d_q8

ROLES = ("igemm",)
CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}


@dataclass
class Inputs:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray | None
    conv: dict[str, Any]  # stride, padding, dilation, groups
    quant: dict[str, Any]  # x_scale, x_zp, out_scale, out_zp, activation


def materialize(case: dict[str, Any]) -> Inputs:
    """Arrays of a case. out_scale is `out_scale_factor` times the scale that maps max|y| to 127."""
    rng = np.random.default_rng(case["seed"])
    groups = case.get("groups", 1)
    x = int8_values(rng, (case["N"], case["C_in"], case["H"], case["W"]), case.get("x_values", "random"))
    w_shape = (case["C_out"], case["C_in"] // groups, case["KH"], case["KW"])
    weight = int8_values(rng, w_shape, case.get("w_values", "random"))
    w_scales, bias = scales_and_bias(rng, case, case["C_out"])
    conv: dict[str, Any] = {k: case.get(k, d) for k, d in CONV_DEFAULTS.items()}
    conv = {k: tuple(v) if isinstance(v, list) else v for k, v in conv.items()}
    x_scale, activation = case.get("x_scale", 0.05), case.get("activation", "none")
    _, y, _ = oracle.requantize(oracle.conv_acc(x, weight, x_zp=case["x_zp"], **conv), x_scale=x_scale,
                                w_scales=w_scales, bias=bias, out_scale=1.0, out_zp=0, activation=activation)
    return Inputs(x, weight, w_scales, bias, conv, calibrated_quant(case, y, x_scale, activation))


def check_igemm(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The op with `variant` forced (and the case's `split_k`), guard bands around the output and garbage
    in the input layout's padding bytes: exact accumulators through identity requantization, then the
    case's requantization, exact but for +-1 next to a rounding tie, none where relu makes the output
    exactly 0 or the int8 clamp hides the tie (runtime/oplib/q8_checks.py)."""
    entry = load_manifest().variant(variant)
    case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    inp = materialize(case)
    garbage = np.random.default_rng(case["seed"] + 1)
    common = dict(inp.conv, input_layout=case["layout"], variant=variant, split_k=case.get("split_k"),
                  device=device, guard=True, pad_garbage=garbage)

    x_zp = inp.quant["x_zp"]
    acc = partial(oracle.conv_acc, x_zp=x_zp, **inp.conv)
    _raise_if(variant, "accumulators (identity requantization)",
              accumulator_problem(partial(run_igemm_conv2d_q8, **common), acc, inp.x, inp.weight, x_zp,
                                  np.random.default_rng(case["seed"] + 2), inp.w_scales.dtype))

    got = run_igemm_conv2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.quant, **common).output
    reference = partial(oracle.conv2d_q8_reference, inp.x, inp.weight, inp.w_scales, inp.bias, **inp.conv)
    _raise_if(variant, "requantized output", requant_problem(got, reference, inp.quant))


def _raise_if(variant: str, what: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"igemm check of {variant} failed: {what}: {problem}")


# --- what the generic property tests draw ----------------------------------------------------------


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import igemm_cases  # Hypothesis only where cases are drawn

    return igemm_cases(input_layouts(entry, manifest) or [], splits=k_step(entry) > 0)


LEVELS = (
    Level("igemm", ROLES, check_igemm, _cases,
          "the op with the variant forced (K split as the case says): exact accumulators through identity "
          "requantization, then exact requantization but for +-1 next to a rounding tie; guard bands, "
          "garbage in the input layout's padding bytes",
          classes_of, conv_cells(_cases, CONV_CLASSES)),
)
