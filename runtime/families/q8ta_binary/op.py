"""Host side of int8 add / mul: check arguments, fold the scales, pick a variant, dispatch.

a and b are int8 NCHW arrays or Packed tensors (on the host or on the device) that broadcast by
NumPy rules; the output, of the broadcast shape, is laid out like a. A specialized variant serves a
and the output in its layout with b of the same shape and layout, or b per channel / scalar given on
the host; the generic variant serves everything else, each tensor read through its own metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import builtin_layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.oplib import elementwise as ew
from runtime.oplib import validate
from runtime.oplib.conv import activation_code, check_limit, device_of

ROLE = "binary_q8"
OPS = ("add", "mul")
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
# the scales are float32 on the device, normal and finite
SCALE_WHY = "the device folds the scales in float32, where it must be a finite normal number"
# b as per-channel words: (1, C, 1, 1) in 4c is one word per 4 channels, word c // 4
CHANNEL_WORDS = builtin_layout("4c")


@dataclass(frozen=True)
class Requant:
    """Checked zero points, the float32 multipliers the shader applies (oracle.multipliers) and the
    activation."""

    a_zp: int
    b_zp: int
    out_zp: int
    scales: tuple[float, float, float]  # A, B (add), M (mul)
    activation: int


def _scale(value: Any, name: str) -> float:
    v = validate.positive_finite(value, name)
    validate.float32_range(v, name, FLOAT32_TINY, FLOAT32_MAX, SCALE_WHY)
    return float(np.float32(v))


def _multiplier(value: float, what: str, largest: float) -> float:
    """`value` rounded to float32; below the smallest normal it is 0 (it cannot move a result)."""
    if value > largest:
        raise ValueError(f"{what} = {value:.6g} is too large: the shader's float32 product with it would "
                         f"overflow (at most {largest:.6g})")
    m = float(np.float32(value))
    return 0.0 if m < FLOAT32_TINY else m


def check_requant(op: str, *, a_scale: Any, a_zp: Any, b_scale: Any, b_zp: Any, out_scale: Any, out_zp: Any,
                  activation: Any) -> Requant:
    sa, sb, so = _scale(a_scale, "a_scale"), _scale(b_scale, "b_scale"), _scale(out_scale, "out_scale")
    if op == "add":
        # |(a - a_zp) * A| <= 255 * A stays finite (then the sum is finite or an infinity of one sign, never NaN)
        scales = (_multiplier(sa / so, "a_scale / out_scale", FLOAT32_MAX / 256),
                  _multiplier(sb / so, "b_scale / out_scale", FLOAT32_MAX / 256), 0.0)
    else:
        scales = (0.0, 0.0, _multiplier(sa * sb / so, "a_scale * b_scale / out_scale", FLOAT32_MAX))
    return Requant(validate.zero_point(a_zp, "a_zp"), validate.zero_point(b_zp, "b_zp"),
                   validate.zero_point(out_zp, "out_zp"), scales, activation_code(activation))


def _broadcast(a: ew.Tensor, b: ew.Tensor) -> tuple[int, int, int, int]:
    try:
        n, c, h, w = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a.shape={a.shape} and b.shape={b.shape} do not broadcast (NumPy rules: each dim equal, "
                         "or 1 in one of them)") from None
    return n, c, h, w


def b_mode(a: ew.Tensor, b: ew.Tensor, out_shape: tuple[int, ...]) -> int | None:
    """How a specialized variant reads b: 0 word for word (b like a), 1 per channel group (b of shape
    (1, C, 1, 1) or (1, 1, 1, 1) on the host); None: only the generic variant serves the call."""
    if a.shape != out_shape:
        return None
    if b.shape == out_shape and b.layout == a.layout:
        return 0
    if not b.on_device and b.shape in ((1, out_shape[1], 1, 1), (1, 1, 1, 1)):
        return 1
    return None


def _entry(manifest: Manifest, dev: Device, op: str, a: ew.Tensor, mode: int | None, words: int,
           forced: Any) -> VariantEntry:
    def accepts(axes: Mapping[str, Any]) -> str | None:
        if axes.get("op") != op:
            return f"it computes {axes.get('op')!r}, the call {op!r}"
        if axes.get("layout") != "generic" and mode is None:
            return ("its layout is specialized for a and b of one shape and layout (or b per channel on the host); "
                    "the call needs the generic variant")
        return ew.layout_reason(axes, a.layout)

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        return (entry.axes["layout"] == "generic", *ew.wg_preference(entry, words))

    return ew.choose(manifest, dev, role=ROLE, forced=forced, accepts=accepts, preference=preference,
                     what=f"{op} with a in {a.layout.name!r}")


def _step(dev: Device, entry: VariantEntry, a: ew.Tensor, b: ew.Tensor, out_shape: tuple[int, int, int, int],
          rq: Requant, mode: int | None, out: Buffer, garbage: np.random.Generator | None) -> Step:
    words = a.layout.words(out_shape)
    buffers: dict[Any, Any] = {0: out, 1: a.data(garbage)}
    spec = {"ACTIVATION": rq.activation}
    if entry.axes["layout"] == "generic":
        buffers[2] = b.data(garbage)
        buffers[3], buffers[4], buffers[5] = (ew.metadata(t.layout, s) for t, s in
                                              ((a, out_shape), (a, a.shape), (b, b.shape)))
        spec.update(OUT_HASH=a.layout.hashed_i32(), A_HASH=a.layout.hashed_i32(), B_HASH=b.layout.hashed_i32())
    elif mode == 1:
        per_channel = np.broadcast_to(b.numpy(), (1, out_shape[1], 1, 1))
        buffers[2] = CHANNEL_WORDS.pack(per_channel, pad_value=None if garbage is not None else 0, rng=garbage)
    else:
        buffers[2] = b.data(garbage)
    n, c, h, w = out_shape
    push = {"sizes": (w, h, c, n), "zps": (rq.a_zp, rq.b_zp, rq.out_zp, words), "scales": (*rq.scales, 0.0),
            "b_mode": 0 if mode is None else mode}
    return ew.word_step(dev, entry, spec, buffers, push, words)


BinaryRun = ew.Run  # what run_* return


def run_binary(
    op: str, a: Any, b: Any, *, a_scale: Any, a_zp: Any, b_scale: Any, b_zp: Any, out_scale: Any, out_zp: Any,
    activation: Any = "none", layout: Any = None, packed: Any = None, variant: Any = None,
    device: Device | None = None, guard: bool = False, garbage: np.random.Generator | None = None,
    timestamps: bool = False,
) -> BinaryRun:
    """add_q8 / mul_q8 with the knobs tests and benchmarks need: guard bands around the output,
    `garbage` in the inputs' padding bytes and in the output buffer before the dispatch, timestamps."""
    validate.choice(op, "op", OPS)
    manifest = load_manifest()
    at = ew.tensor_arg(a, "a", dtypes=("int8",), layout=layout, layout_name="layout", manifest=manifest)
    b_layout = None if isinstance(b, Packed) else at.layout.name
    bt = ew.tensor_arg(b, "b", dtypes=("int8",), layout=b_layout, layout_name="layout", manifest=manifest)
    out_shape = _broadcast(at, bt)
    rq = check_requant(op, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp, out_scale=out_scale,
                       out_zp=out_zp, activation=activation)
    dev = device_of(device)
    ew.on_device(dev, at, bt)
    where = ew.placement(packed, at.on_device)
    words = at.layout.words(out_shape)
    mode = b_mode(at, bt, out_shape)
    entry = _entry(manifest, dev, op, at, mode, words, variant)
    for t in (at, bt):
        check_limit(dev, t.name, t.nbytes)
    buf = ew.output_buffer(dev, "the output", 4 * words, guard=guard, garbage=garbage)
    seconds = ew.run_into(dev, buf, lambda: _step(dev, entry, at, bt, out_shape, rq, mode, buf, garbage),
                          f"{entry.name} output", guard=guard, timestamps=timestamps)
    return BinaryRun(ew.deliver(buf, at.layout, out_shape, np.int8, where), entry.name, seconds)


def _doc(op: str, formula: str) -> str:
    return f"""int8 {op} on the Vulkan device, with NumPy broadcasting of a and b over N, C, H, W.

    y = {formula}; relu if activation="relu"; q = clamp(roundEven(y / out_scale) + out_zp, -128, 127),
    in float32 with the scales folded on the host into multipliers rounded once to float32
    (runtime/families/q8ta_binary/oracle.py defines every rounding). Scales are finite normal float32
    values; zero points in [-128, 127].
    a and b are int8 NCHW arrays or Packed int8 tensors; the output, of the broadcast shape, is laid out
    like a: a's own layout when it is Packed, else `layout` (default "4w4c"), which also lays out an
    array b. Result: an int8 NCHW array; a device-resident Packed (in a's layout) when a is one, so ops
    chain on the device; ``packed=True`` / ``False`` ask for a Packed / an array whatever a is.
    `variant` forces a variant by name.
    """


def add_q8(a: np.ndarray | Packed, b: np.ndarray | Packed, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int,
           out_scale: float, out_zp: int, activation: str = "none", layout: str | None = None,
           packed: bool | None = None, variant: str | None = None, device: Device | None = None) -> np.ndarray | Packed:
    return run_binary("add", a, b, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp, out_scale=out_scale,
                      out_zp=out_zp, activation=activation, layout=layout, packed=packed, variant=variant,
                      device=device).result


def mul_q8(a: np.ndarray | Packed, b: np.ndarray | Packed, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int,
           out_scale: float, out_zp: int, activation: str = "none", layout: str | None = None,
           packed: bool | None = None, variant: str | None = None, device: Device | None = None) -> np.ndarray | Packed:
    return run_binary("mul", a, b, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp, out_scale=out_scale,
                      out_zp=out_zp, activation=activation, layout=layout, packed=packed, variant=variant,
                      device=device).result


add_q8.__doc__ = _doc("add", "a_scale * (a - a_zp) + b_scale * (b - b_zp)")
mul_q8.__doc__ = _doc("mul", "a_scale * (a - a_zp) * b_scale * (b - b_zp)")
