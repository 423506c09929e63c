"""Checks of linear_q8 on the int8 GEMM variants (role `gemm`, owned by q8ta_conv2d) against the NumPy oracle.

A *case* is a small JSON-able dict (M, K, N, quantization parameters, value modes, seed);
`materialize` turns it into arrays deterministically, so a failing case printed as JSON reruns
exactly (`python -m runtime.tools.repro`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError
from runtime.oplib.q8_checks import calibrated_quant, first_mismatch, int8_values, requant_mismatch, scales_and_bias

from . import oracle
from .op import run_linear_q8


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
    x = int8_values(rng, (case["M"], case["K"]), case.get("x_values", "random"))
    weight = int8_values(rng, (case["N"], case["K"]), case.get("w_values", "random"))
    w_scales, bias = scales_and_bias(rng, case, case["N"])
    x_scale = case.get("x_scale", 0.05)
    activation = case.get("activation", "none")
    _, scaled, _ = oracle.linear_q8_reference(x, weight, w_scales, bias, x_scale=x_scale, x_zp=case["x_zp"],
                                              out_scale=1.0, out_zp=0, activation=activation)
    return Inputs(x, weight, w_scales, bias, calibrated_quant(case, scaled, x_scale, activation))


def _raise_if(name: str, what: str, problem: str | None) -> None:
    if problem:
        raise VerificationError(f"linear check of {name} failed: {what}: {problem}")


def check_linear(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """linear_q8 with this GEMM variant forced: exact accumulators through identity requantization
    (small values, every accumulator in the int8 range; then the case's own values, saturating), then
    the requantized output, exact but next to a rounding tie (+-1 there)."""
    entry = load_manifest().variant(variant)
    case = dict(case, scale_dtype=str(entry.axes.get("dtype", "float32")))
    inp = materialize(case)
    kw = inp.kwargs
    x_zp = kw["x_zp"]
    ones = np.ones(case["N"], inp.w_scales.dtype)
    identity = dict(x_scale=1.0, x_zp=x_zp, out_scale=1.0, out_zp=0, variant=variant, device=device, guard=True)

    small = np.random.default_rng(case["seed"] + 1)
    x_small = np.clip(x_zp + int8_values(small, inp.x.shape, "small").astype(np.int64), -128, 127).astype(np.int8)
    w_small = int8_values(small, inp.weight.shape, "small")
    for what, x, w in (("small values", x_small, w_small), ("the case's values", inp.x, inp.weight)):
        run = run_linear_q8(x, w, ones, None, **identity)
        want = np.clip(oracle.linear_acc(x, w, x_zp), -128, 127)
        _raise_if(run.variant, f"accumulators (identity requantization, {what})", first_mismatch(run.output, want, 0))

    run = run_linear_q8(inp.x, inp.weight, inp.w_scales, inp.bias, variant=variant, device=device, guard=True, **kw)
    want, scaled, magnitude = oracle.linear_q8_reference(inp.x, inp.weight, inp.w_scales, inp.bias, **kw)
    _raise_if(run.variant, "requantized output", requant_mismatch(run.output, want, scaled, magnitude))


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import linear_cases  # Hypothesis only where cases are drawn

    return linear_cases()


def _coverage(case: dict[str, Any]) -> tuple[str, ...]:
    classes = ["K%4=0" if case["K"] % 4 == 0 else "K%4!=0"]
    classes += [f"{axis}=1" for axis in ("M", "K", "N") if case[axis] == 1]
    return tuple(classes)


LEVELS = (
    Level("linear", ("gemm",), check_linear, _cases,
          "linear_q8 with the GEMM variant forced: exact accumulators (identity requantization), then the "
          "requantized output (+-1 only next to a rounding tie)", _coverage),
)
