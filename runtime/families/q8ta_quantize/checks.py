"""Checks of the q8ta_quantize variants (roles quantize / dequantize) against the family's NumPy oracle.

A *case* is a JSON-able dict (shape, layout, scale and zero-point modes, value mode, how the input
is handed over, seed); :func:`materialize` turns it into arrays deterministically, so a failing case
printed as JSON reruns exactly (`python -m runtime.tools.repro`). Every run has guard bands around
its output and garbage in the output buffer before the dispatch (and, for dequantize, in the int8
input's padding bytes). `TOLERANCE` counts, per (level, variant), the elements compared, those
inside a tolerance window, and those where the device used it (returned other than the oracle's
round-to-nearest value); on a device that rounds to nearest, `used` stays 0.
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
from runtime.oplib import cells

from . import oracle
from .op import DEQUANTIZE, PLAIN, QUANTIZE, run_dequantize, run_quantize

ROLES = (QUANTIZE, DEQUANTIZE)
# (level, variant, "elements" | "window" | "used") -> count
TOLERANCE: Counter[tuple[str, str, str]] = Counter()
LOG2_SCALES: dict[str, tuple[float, float]] = {  # log2 scale ranges of each scale mode
    "unit": (-10.0, 7.0), "tiny": (-126.0, -100.0), "huge": (100.0, 120.0), "fp16": (-14.0, 8.0),
}


@dataclass
class Inputs:
    tensor: np.ndarray  # x (float) for quantize, q (int8) for dequantize
    scale: np.ndarray | float
    zp: np.ndarray | int


def _scales(rng: np.random.Generator, mode: str, count: int) -> np.ndarray:
    if mode == "pow2":
        return np.exp2(rng.integers(-20, 21, count)).astype(np.float32)
    if mode == "bounds":  # the ends of the accepted range, exactly
        return rng.choice(np.exp2(np.array([-126.0, 120.0])), count).astype(np.float32)
    lo, hi = LOG2_SCALES[mode]
    return np.exp2(rng.uniform(lo, hi, count)).astype(np.float32)


def _zero_points(rng: np.random.Generator, mode: str, count: int) -> np.ndarray:
    if mode == "extremes":
        return rng.choice(np.array([-128, 127, 0]), count).astype(np.int32)
    return rng.integers(-128, 128, count).astype(np.int32)


def _quant(case: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray | float, np.ndarray | int]:
    count = case["C"] if case["quant"] == "per_channel" else 1
    scale = _scales(rng, case["scale_mode"], count)
    zp = _zero_points(rng, case["zp_mode"], count)
    if case["quant"] == "per_channel":
        return scale, zp
    return float(scale[0]), int(zp[0])


def _float_values(rng: np.random.Generator, mode: str, shape: tuple[int, ...], scale: np.ndarray,
                  dtype: np.dtype) -> np.ndarray:
    """x for quantize, in float64 before the cast: relative to the scale (so every int8 result and
    both saturations occur), .5 ties, huge, subnormal, or a mix of them element by element."""
    info = np.finfo(dtype)
    if mode == "mixed":
        modes = ("span", "ties", "huge", "subnormal", "zeros")
        parts = np.stack([_float_values(rng, m, shape, scale, dtype) for m in modes])
        return np.take_along_axis(parts, rng.integers(0, len(modes), (1, *shape)), 0)[0]
    if mode == "span":
        return rng.uniform(-300, 300, shape) * scale
    if mode == "ties":
        return (rng.integers(-140, 140, shape) + 0.5) * scale
    if mode == "huge":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.0, shape) * float(info.max)
    if mode == "subnormal":
        return rng.uniform(-1.0, 1.0, shape) * float(info.tiny)
    return np.zeros(shape)


def materialize(case: dict[str, Any], role: str) -> Inputs:
    """Arrays of a case: x (quantize) or q (dequantize), scale and zero point."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["N"], case["C"], case["H"], case["W"])
    scale, zp = _quant(case, rng)
    if role == DEQUANTIZE:
        mode = case.get("values", "random")
        if mode in ("min", "max"):
            return Inputs(np.full(shape, -128 if mode == "min" else 127, np.int8), scale, zp)
        if mode == "extremes":
            return Inputs(rng.choice(np.array([-128, 127, -127, 0], np.int8), shape), scale, zp)
        return Inputs(rng.integers(-128, 128, shape, dtype=np.int8), scale, zp)
    dtype = np.dtype(case["dtype"])
    s = np.asarray(scale, np.float64).reshape(1, -1, 1, 1)
    values = _float_values(rng, case.get("values", "span"), shape, s, dtype)
    limit = float(np.finfo(dtype).max)
    return Inputs(np.clip(values, -limit, limit).astype(dtype), scale, zp)


def _hand_over(t: np.ndarray, residency: str, layout: str) -> Any:
    """The tensor as the op gets it: an array, a Packed on the host, or a Packed on the device."""
    if residency == "array":
        return t
    p = pack(t, layout)
    return p.to_device() if residency == "device" else p


def _unpacked(result: Any) -> np.ndarray:
    return result.numpy() if isinstance(result, Packed) else np.asarray(result)


def _where(arr: np.ndarray, flat: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, arr.shape))


def _fail(level: str, variant: str, message: str) -> VerificationError:
    return VerificationError(f"{level} check of {variant} failed: {message}")


def _count(level: str, variant: str, elements: int, window: int, used: int) -> None:
    TOLERANCE[(level, variant, "elements")] += elements
    TOLERANCE[(level, variant, "window")] += window
    TOLERANCE[(level, variant, "used")] += used


def check_quantize(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """quantize with this variant forced: the oracle's value exactly, except inside a tie window.

    Exact where provable. The oracle's q is the IEEE float32 quotient rounded half to even, which is
    what a correctly rounding device (lavapipe) computes bit for bit. Vulkan only bounds OpFDiv to
    2.5 ulp (for divisors in [2^-126, 2^126]; the op accepts [2^-126, 2^120]), so let v = x / scale
    exactly and v' the device's quotient: |v' - v| <= 2.5 ulp(v) <= 2.5 * 2^-23 |v| (ulp(v) <= 2^-23
    |v| for a normal v; a subnormal v rounds to 0 however it is computed). roundEven(v') can differ
    from the oracle's only if a half-integer t lies between v' and fl32(v) (or v' == t), so
    |v - t| <= 2.5 * 2^-23 |v|. The oracle knows v as the float64 quotient v64, |v64 - v| <= 2^-53 |v|,
    so the window |v64 - t| <= 2^-21 |v64| (> 2.5 * 2^-23 |v| + 2^-53 |v| with margin) holds every
    element where the device may pick either neighbour of t; there any value between the roundings of
    v64 -+ 2^-21 |v64| is accepted (oracle.quantize_window). Vulkan also lets a device flush a
    subnormal x (float32 below 2^-126, float16 below 2^-14) to 0, so there the result for x = 0
    (clamp(zp)) is accepted too. Everywhere else: equal. The output buffer starts as garbage and is
    checked as words: its padding bytes must come out 0 (every word written).
    """
    level = "quantize"
    case = dict(case, dtype=load_manifest().variant(variant).axes["dtype"])
    inp = materialize(case, QUANTIZE)
    rng = np.random.default_rng(case["seed"] + 1)
    x = _hand_over(inp.tensor, case["residency"], PLAIN.name)
    run = run_quantize(x, inp.scale, inp.zp, layout=case["layout"], packed=True, variant=variant, device=device,
                       guard=True, garbage=rng)
    assert isinstance(run.result, Packed)
    got = run.result.numpy()
    words = run.result.host_words()
    want_words = run.result.layout.pack(got, pad_value=0)
    if not np.array_equal(words, want_words):
        i = int(np.flatnonzero(words != want_words)[0])
        raise _fail(level, run.variant, f"output word {i} is {int(words[i]):#010x}, expected {int(want_words[i]):#010x}"
                    " (padding bytes must be 0: was every word written?)")
    want = oracle.quantize(inp.tensor, inp.scale, inp.zp)
    lo, hi = oracle.quantize_window(inp.tensor, inp.scale, inp.zp)
    exact = got == want
    ok = exact | ((lo <= got) & (got <= hi))
    _count(level, run.variant, got.size, int(np.count_nonzero(lo != hi)), int(np.count_nonzero(~exact & ok)))
    if not ok.all():
        bad = np.flatnonzero(~ok)
        idx = _where(got, int(bad[0]))
        s = inp.scale if np.ndim(inp.scale) == 0 else np.asarray(inp.scale)[idx[1]]
        raise _fail(level, run.variant, f"{bad.size} of {got.size} elements wrong; first at {idx}: "
                    f"got {int(got[idx])}, expected {int(want[idx])} (accepted {int(lo[idx])}..{int(hi[idx])}; "
                    f"x={inp.tensor[idx]!r}, scale={float(s)!r})")


def check_dequantize(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """dequantize with this variant forced: the oracle's value exactly, or the other neighbour.

    Exact where provable. float32(q - zp) is exact (|q - zp| <= 255) and the product with scale is the
    one rounding (a second one for float16: the store). The oracle rounds both to nearest even, as a
    device that rounds to nearest does (lavapipe: bit for bit). Vulkan leaves the rounding mode of
    arithmetic and of the narrowing store to the implementation (nearest or toward zero), so the
    other `dtype` neighbour of the exact (q - zp) * scale is accepted too: after a directed float32
    rounding the float16 rounding still lands on one of the two float16 values around the exact
    product. With scales in [2^-126, 2^120] a float32 product is never subnormal or infinite; a float16
    one may be either: beyond 65504 the neighbours are 65504 and inf; below 2^-14 a device may flush
    to 0, which is accepted there. Input padding bytes hold garbage, the output buffer starts as
    garbage (an element left unwritten shows).
    """
    level = "dequantize"
    dtype = str(load_manifest().variant(variant).axes["dtype"])
    inp = materialize(case, DEQUANTIZE)
    rng = np.random.default_rng(case["seed"] + 1)
    q = _hand_over(inp.tensor, case["residency"], case["layout"])
    run = run_dequantize(q, inp.scale, inp.zp, layout=None if isinstance(q, Packed) else case["layout"],
                         dtype=dtype, packed=case.get("packed_out"), variant=variant, device=device, guard=True,
                         garbage=rng)
    got = _unpacked(run.result)
    want = oracle.dequantize(inp.tensor, inp.scale, inp.zp, dtype)
    down, up, tiny = oracle.dequantize_neighbours(inp.tensor, inp.scale, inp.zp, dtype)
    exact = got == want
    ok = exact | (got == down) | (got == up) | (tiny & (got == 0))
    _count(level, run.variant, got.size, int(np.count_nonzero((down != up) | tiny)),
           int(np.count_nonzero(~exact & ok)))
    if got.dtype != np.dtype(dtype) or got.shape != want.shape:
        raise _fail(level, run.variant, f"result is {got.dtype} {got.shape}, expected {dtype} {want.shape}")
    if not ok.all():
        bad = np.flatnonzero(~ok)
        idx = _where(got, int(bad[0]))
        raise _fail(level, run.variant, f"{bad.size} of {got.size} elements wrong; first at {idx}: got {got[idx]!r}, "
                    f"expected {want[idx]!r} (or {down[idx]!r} / {up[idx]!r}; q={int(inp.tensor[idx])})")


def check_roundtrip(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """dequantize then quantize with the same scale and zero point, the float tensor kept on the
    device between them (this variant forced for its role, the other picked): q exactly.

    Provable: float32 (q - zp) * scale is within 2^-24 of (q - zp) relatively, the division within 2.5
    ulp more, so the quotient is within 4 * 2^-23 * 255 < 0.5 of the integer q - zp and rounds back to it.
    float16 adds a relative 2^-11 (255 * 2^-11 < 0.5) while the product stays normal and finite in
    float16: the strategy draws scales in [2^-14, 2^8] for it (scale mode "fp16").
    """
    entry = load_manifest().variant(variant)
    dtype = str(entry.axes["dtype"])
    inp = materialize(case, DEQUANTIZE)
    q = pack(inp.tensor, case["layout"]).to_device(device)
    forced = {entry.role: variant}
    floats = run_dequantize(q, inp.scale, inp.zp, dtype=dtype, variant=forced.get(DEQUANTIZE), device=device,
                            guard=True)
    back = run_quantize(floats.result, inp.scale, inp.zp, layout=case["layout"], variant=forced.get(QUANTIZE),
                        device=device, guard=True)
    names = f"{floats.variant} -> {back.variant}"
    if not (isinstance(floats.result, Packed) and floats.result.on_device and isinstance(back.result, Packed)
            and back.result.on_device):
        raise _fail("roundtrip", names, "a device-resident input did not give device-resident results")
    got = back.result.numpy()
    if not np.array_equal(got, inp.tensor):
        bad = np.flatnonzero(got != inp.tensor)
        idx = _where(got, int(bad[0]))
        raise _fail("roundtrip", names, f"{bad.size} of {got.size} elements changed; first at {idx}: "
                    f"{int(inp.tensor[idx])} -> {floats.result.numpy()[idx]!r} -> {int(got[idx])}")


# --- what the generic property tests draw ----------------------------------------------------------


def accepted_layouts(entry: VariantEntry, manifest: Manifest) -> list[str]:
    """Every layout for a generic variant, else the one it is specialized for (axis `layout`)."""
    return cells.accepted_layouts(entry, manifest, "layout")


def _quants(entry: VariantEntry) -> list[str]:
    # a per-channel variant also serves per-tensor calls (scale and zp broadcast)
    return ["per_channel", "per_tensor"] if entry.axes.get("quant") == "per_channel" else ["per_tensor"]


def _cases(kind: str) -> Any:
    def cases(entry: VariantEntry, manifest: Manifest) -> Any:
        from .strategies import quant_cases  # Hypothesis only where cases are drawn

        return quant_cases(kind, accepted_layouts(entry, manifest), str(entry.axes["dtype"]), _quants(entry))

    return cases


LEVELS = (
    Level("quantize", (QUANTIZE,), check_quantize, _cases(QUANTIZE),
          "exact, except where x / scale is within 2^-21 relative of a .5 tie (Vulkan's OpFDiv bound) or x "
          "is subnormal (may be flushed); padding bytes written as 0"),
    Level("dequantize", (DEQUANTIZE,), check_dequantize, _cases(DEQUANTIZE),
          "exact, or the other neighbour of the exact product (Vulkan's rounding mode is the "
          "implementation's); float16 subnormals may flush to 0"),
    Level("roundtrip", ROLES, check_roundtrip, _cases("roundtrip"),
          "dequantize -> quantize on the device, float tensor device-resident in between: q exactly"),
)
