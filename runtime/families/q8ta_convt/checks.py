"""Checks of the q8ta_convt variants against the family's NumPy oracle (level convt).

A *case* is a small JSON-able dict (shape, conv_transpose parameters, quantization parameters,
value modes, seed, input layout); `materialize` turns it into arrays deterministically, so a
failing case printed as JSON reruns exactly (`python -m runtime.tools.repro`). C_out is the total
number of output channels (groups * the weight's dim 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib.cells import CONV_CLASSES, accepted_layouts, conv_cells
from runtime.oplib.q8_checks import (
    calibrated_quant,
    first_mismatch,
    int8_values,
    requant_problem,
    scales_and_bias,
)

from . import oracle
from .op import ROLE, run_conv_transpose2d_q8

CONV_KEYS = ("stride", "padding", "output_padding", "dilation", "groups")


@dataclass
class Inputs:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray | None
    conv: dict[str, Any]
    quant: dict[str, Any]


def materialize(case: dict[str, Any]) -> Inputs:
    """Arrays of a case. out_scale is `out_scale_factor` times the scale that maps max|y| to 127."""
    rng = np.random.default_rng(case["seed"])
    G = case["groups"]
    x = int8_values(rng, (case["N"], case["C_in"], case["H"], case["W"]), case.get("x_values", "random"))
    w_shape = (case["C_in"], case["C_out"] // G, case["KH"], case["KW"])
    weight = int8_values(rng, w_shape, case.get("w_values", "random"))
    w_scales, bias = scales_and_bias(rng, case, case["C_out"])
    conv: dict[str, Any] = {k: tuple(case[k]) if isinstance(case[k], list) else case[k] for k in CONV_KEYS}
    x_scale = case.get("x_scale", 0.05)
    activation = case.get("activation", "none")
    _, scaled, _ = oracle.conv_transpose2d_q8_reference(x, weight, w_scales, bias, x_scale=x_scale, x_zp=case["x_zp"],
                                                        out_scale=1.0, out_zp=0, activation=activation, **conv)
    return Inputs(x, weight, w_scales, bias, conv, calibrated_quant(case, scaled, x_scale, activation))


def _raise_if(name: str, what: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"convt check of {name} failed: {what}: {problem}")


def check_convt(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """The op with this variant forced, guard bands around the output and garbage in the input
    layout's padding bytes: exact accumulators through identity requantization (small values, every
    accumulator in the int8 range; then the case's own values, saturating), then the requantized
    output, exact but next to a rounding tie (+-1 there)."""
    entry = load_manifest().variant(variant)
    case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    inp = materialize(case)
    x_zp = inp.quant["x_zp"]
    garbage = np.random.default_rng(case["seed"] + 1)
    common = dict(input_layout=case["layout"], variant=variant, device=device, guard=True, pad_garbage=garbage,
                  **inp.conv)

    ones = np.ones(case["C_out"], inp.w_scales.dtype)
    x_small = np.clip(x_zp + int8_values(garbage, inp.x.shape, "small").astype(np.int64), -128, 127).astype(np.int8)
    w_small = int8_values(garbage, inp.weight.shape, "small")
    for what, x, w in (("small values", x_small, w_small), ("the case's values", inp.x, inp.weight)):
        run = run_conv_transpose2d_q8(x, w, ones, None, x_scale=1.0, x_zp=x_zp, out_scale=1.0, out_zp=0, **common)
        want = np.clip(oracle.convt_acc(x, w, x_zp=x_zp, **inp.conv), -128, 127)
        _raise_if(run.variant, f"accumulators (identity requantization, {what})", first_mismatch(run.output, want, 0))

    run = run_conv_transpose2d_q8(inp.x, inp.weight, inp.w_scales, inp.bias, **inp.quant, **common)
    reference = partial(oracle.conv_transpose2d_q8_reference, inp.x, inp.weight, inp.w_scales, inp.bias, **inp.conv)
    _raise_if(run.variant, "requantized output", requant_problem(run.output, reference, inp.quant))



def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import convt_cases  # Hypothesis only where cases are drawn

    return convt_cases(accepted_layouts(entry, manifest))


def _coverage(case: dict[str, Any]) -> tuple[str, ...]:
    classes = [f"layout={case['layout']}"]
    for key in ("stride", "output_padding", "dilation"):
        if max(case[key]) > 1 or (key == "output_padding" and max(case[key]) > 0):
            classes.append(key)
    if case["groups"] > 1:
        classes.append("depthwise" if case["groups"] == case["C_in"] else "grouped")
    return tuple(classes)


# no GEMM K: the gather walks the taps that reach each output
CONVT_CLASSES = tuple(c for c in CONV_CLASSES if c != "k_tail")

LEVELS = (
    Level("convt", (ROLE,), check_convt, _cases,
          "the op with this variant forced: exact accumulators (identity requantization), then the requantized "
          "output (+-1 only next to a rounding tie); guard bands, garbage in the input layout's padding", _coverage,
          conv_cells(_cases, CONVT_CLASSES)),
)
