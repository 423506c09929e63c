"""Checks of the q8ta_binary variants (role binary_q8) against the family's NumPy oracle.

A *case* is a JSON-able dict (shape, how b (and a) broadcast, layouts, how each tensor is handed
over, values, scales, zero points, activation, seed); :func:`materialize` turns it into arrays
deterministically, so a failing case printed as JSON reruns exactly (`python -m runtime.tools.repro`).
`TOLERANCE` counts, per variant, the elements compared, those inside a tolerance window, and those
where the device used it; on a device that rounds to nearest, `used` stays 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed, pack
from runtime.core.registry import Level, VerificationError

from . import oracle
from .op import ROLE, run_binary

ROLES = (ROLE,)
TOLERANCE: Counter[tuple[str, str, str]] = Counter()
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Inputs:
    a: np.ndarray
    b: np.ndarray
    kwargs: dict[str, Any]  # scales, zero points, activation


def shapes(case: dict[str, Any], rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of a and b: a is the full shape unless `broadcast` is "both" (then each dim where a is
    1 is full in b); b is the full shape, per channel, scalar, or random dims set to 1."""
    full = (case["N"], case["C"], case["H"], case["W"])
    kind = case["broadcast"]
    if kind == "same":
        return full, full
    if kind == "channel":
        return full, (1, full[1], 1, 1)
    if kind == "scalar":
        return full, (1, 1, 1, 1)
    ones_b = rng.random(4) < 0.5
    if kind == "random":
        return full, tuple(1 if o else s for o, s in zip(ones_b, full, strict=True))
    ones_a = rng.random(4) < 0.5
    a = tuple(1 if o else s for o, s in zip(ones_a, full, strict=True))
    b = tuple(1 if ob and not oa else s for oa, ob, s in zip(ones_a, ones_b, full, strict=True))
    return a, b


def _values(rng: np.random.Generator, shape: tuple[int, ...], mode: str) -> np.ndarray:
    if mode in ("min", "max"):
        return np.full(shape, -128 if mode == "min" else 127, np.int8)
    if mode == "extremes":
        return rng.choice(np.array([-128, 127, -127, 0, 1], np.int8), shape)
    return rng.integers(-128, 128, shape, dtype=np.int8)


def materialize(case: dict[str, Any], op: str) -> Inputs:
    """Arrays of a case. out_scale is `out_scale_factor` times the one that maps the largest |y| to 127
    (kept a normal float32): tiny factors saturate at both ends, huge ones round everything to zero;
    at least the out_scale whose multipliers the op accepts (A, B <= max32 / 256, M <= max32 / 2)."""
    rng = np.random.default_rng(case["seed"])
    a_shape, b_shape = shapes(case, rng)
    a = _values(rng, a_shape, case["a_values"])
    b = _values(rng, b_shape, case["b_values"])
    kw = {"a_scale": case["a_scale"], "a_zp": case["a_zp"], "b_scale": case["b_scale"], "b_zp": case["b_zp"]}
    y, _ = oracle.binary_real(a, b, op, out_scale=1.0, activation=case["activation"], **kw)
    peak = float(np.max(np.abs(y))) or 1.0
    sa, sb = float(np.float32(case["a_scale"])), float(np.float32(case["b_scale"]))
    smallest = max(sa, sb) * 512 / FLOAT32_MAX if op == "add" else sa * sb * 2 / FLOAT32_MAX
    out_scale = float(np.clip(max(peak / 127 * case["out_scale_factor"], smallest), FLOAT32_TINY, FLOAT32_MAX))
    return Inputs(a, b, dict(kw, out_scale=out_scale, out_zp=case["out_zp"], activation=case["activation"]))


def _hand_over(t: np.ndarray, residency: str, layout: str) -> Any:
    if residency == "array":
        return t
    p = pack(t, layout)
    return p.to_device() if residency == "device" else p


def check_binary(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """add_q8 / mul_q8 with this variant forced: the oracle's value exactly, except inside a window.

    Exact where provable: every device operation is an integer op, or a float32 multiply or add that
    Vulkan rounds correctly (no fused multiply-add: the shader marks v `precise`), so a device that
    rounds to nearest even returns oracle.binary_q8 bit for bit (lavapipe does). Vulkan leaves the
    rounding direction to the implementation, so the check also accepts any result of rounding a value
    within eps of the real-number v = y / out_scale (oracle.binary_window), with
      add: S = |(a - a_zp) a_scale / out_scale| + |(b - b_zp) b_scale / out_scale|; the host's A, B are
           within 2^-24 relative of the real ratios, each product and the sum within 1 ulp (2^-23
           relative, the sum's against |p1| + |p2| <= S): |v' - v| <= (2^-24 + 2^-22)(1 + 2^-22) S
      mul: S = |v|; M within 2^-24, the product within 2^-23: |v' - v| <= 1.5 * 2^-23 (1 + 2^-23) S
    so eps = 2^-21 S covers both with margin (plus 2^-110 absolute for multipliers flushed to 0 and
    subnormal sums, which round to 0 anyway); relu and roundEven are monotone, so the device's q lies
    in [q(v - eps), q(v + eps)]. Outside those windows: equal. Inputs carry garbage in their padding
    bytes; the output buffer starts as garbage and carries guard bands.
    """
    entry = load_manifest().variant(variant)
    op = str(entry.axes["op"])
    inp = materialize(case, op)
    rng = np.random.default_rng(case["seed"] + 1)
    a = _hand_over(inp.a, case["a_residency"], case["a_layout"])
    b = _hand_over(inp.b, case["b_residency"], case["b_layout"])
    run = run_binary(op, a, b, layout=None if isinstance(a, Packed) else case["a_layout"], packed=case["packed_out"],
                     variant=variant, device=device, guard=True, garbage=rng, **inp.kwargs)
    device_out = case["packed_out"] is not False and case["a_residency"] == "device"
    if isinstance(run.result, Packed) != (case["packed_out"] is True or device_out) or (
            isinstance(run.result, Packed) and run.result.on_device != device_out):
        raise VerificationError(f"binary check of {run.variant} failed: result {type(run.result).__name__} does not "
                                f"follow packed={case['packed_out']} with a {case['a_residency']}")
    got = run.result.numpy() if isinstance(run.result, Packed) else run.result
    want = oracle.binary_q8(inp.a, inp.b, op, **inp.kwargs)
    lo, hi = oracle.binary_window(inp.a, inp.b, op, **inp.kwargs)
    if got.shape != want.shape:
        raise VerificationError(f"binary check of {run.variant} failed: shape {got.shape}, expected {want.shape}")
    exact = got == want
    ok = exact | ((lo <= got) & (got <= hi))
    TOLERANCE[("binary", run.variant, "elements")] += got.size
    TOLERANCE[("binary", run.variant, "window")] += int(np.count_nonzero(lo != hi))
    TOLERANCE[("binary", run.variant, "used")] += int(np.count_nonzero(~exact & ok))
    if not ok.all():
        bad = np.flatnonzero(~ok)
        idx = tuple(int(i) for i in np.unravel_index(int(bad[0]), got.shape))
        ia = inp.a[tuple(min(i, s - 1) for i, s in zip(idx, inp.a.shape, strict=True))]
        ib = inp.b[tuple(min(i, s - 1) for i, s in zip(idx, inp.b.shape, strict=True))]
        raise VerificationError(
            f"binary check of {run.variant} failed: {bad.size} of {got.size} elements wrong; first at {idx}: "
            f"got {int(got[idx])}, expected {int(want[idx])} (accepted {int(lo[idx])}..{int(hi[idx])}; "
            f"a={int(ia)}, b={int(ib)}, a.shape={inp.a.shape}, b.shape={inp.b.shape})")


# --- what the generic property tests draw ----------------------------------------------------------


def _cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import binary_cases  # Hypothesis only where cases are drawn

    layout = str(entry.axes["layout"])
    return binary_cases(None if layout == "generic" else layout, sorted(manifest.layouts))


LEVELS = (
    Level("binary", ROLES, check_binary, _cases,
          "exact, except within 2^-21 of the terms' magnitude of a .5 tie (Vulkan's rounding direction)"),
)
