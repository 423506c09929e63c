"""Host side of quantize / dequantize: check arguments, pick a variant, lay out, dispatch.

The int8 side is a tensor in any layout of the manifest (`layout`, default 4w4c, or a Packed
tensor's own); the float side is plain NCHW (float32 or float16). Results come back to the host
as an NCHW array, or as a :class:`Packed` (``packed=True``), which stays on the device when the
input was a device-resident Packed, so ops can chain without host round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout, builtin_layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.packed import Packed
from runtime.oplib import elementwise as ew
from runtime.oplib import validate
from runtime.oplib.conv import check_limit, check_limits, device_of

QUANTIZE, DEQUANTIZE = "quantize", "dequantize"
FLOAT_DTYPES = ("float32", "float16")
# x / scale is an OpFDiv, whose error Vulkan bounds for divisors in [2^-126, 2^126] only; below 2^120,
# 255 * scale < 2^128 keeps (q - zp) * scale a finite normal float32 (never subnormal, 0 only for q == zp)
SCALE_RANGE = (2.0**-126, 2.0**120)
SCALE_WHY = ("Vulkan bounds the error of x / scale for divisors from 2^-126, and (q - zp) * scale overflows float32 "
             "above 2^120")
# the float side of both ops: plain NCHW (a Packed float tensor must be laid out like this)
PLAIN = builtin_layout("contig")


@dataclass(frozen=True)
class QuantParams:
    """Checked scale and zero point: one of each (arrays of 1) or one per channel (arrays of C)."""

    scale: np.ndarray  # float32
    zp: np.ndarray  # int32
    per_channel: bool

    def scalars(self) -> tuple[float, int]:
        """Push-constant values (the per-channel variants ignore them)."""
        return (float(self.scale[0]), int(self.zp[0])) if not self.per_channel else (1.0, 0)

    def arrays(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel buffers (a per-tensor call broadcast, for a per-channel variant)."""
        return np.broadcast_to(self.scale, (channels,)).copy(), np.broadcast_to(self.zp, (channels,)).copy()


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def quant_params(scale: Any, zp: Any, channels: int) -> QuantParams:
    """`scale` (> 0) and `zp` ([-128, 127]): scalars, or (C,) arrays for per-channel quantization."""
    scale, zp = _scalar(scale), _scalar(zp)
    per_channel = isinstance(scale, np.ndarray) or isinstance(zp, np.ndarray)
    if per_channel:
        s = (validate.per_channel(scale, "scale", channels, positive=True) if isinstance(scale, np.ndarray)
             else np.full(channels, validate.positive_finite(scale, "scale")))
        z = (validate.zero_points(zp, "zp", channels) if isinstance(zp, np.ndarray)
             else np.full(channels, validate.zero_point(zp, "zp")))
        validate.float32_range(s, "scale", *SCALE_RANGE, SCALE_WHY)
    else:
        s = np.array([validate.positive_finite(scale, "scale")])
        z = np.array([validate.zero_point(zp, "zp")])
        validate.float32_range(s[0], "scale", *SCALE_RANGE, SCALE_WHY)
    return QuantParams(s.astype(np.float32), z.astype(np.int32), per_channel)


def _float_dtype(value: Any) -> np.dtype:
    """The `dtype` argument: a name, a NumPy dtype or scalar type, of float32 or float16."""
    name: Any = value
    if value is not None and not isinstance(value, str):
        try:
            name = np.dtype(value).name
        except TypeError:
            pass  # reported below with the value as given
    return np.dtype(validate.choice(name, "dtype", FLOAT_DTYPES))


def _plain_float(t: ew.Tensor) -> None:
    if t.packed is not None and (t.layout.order != ("N", "C", "H", "W") or t.layout.block_bytes != 1):
        raise ValueError(f"{t.name} is a packed float tensor in layout {t.layout.name!r}; the float side of "
                         "quantize/dequantize is plain NCHW (pack it in 'contig')")


def _entry(manifest: Manifest, dev: Device, role: str, layout: Layout, dtypes: tuple[str, ...],
           qp: QuantParams, words: int, forced: Any) -> VariantEntry:
    """The variant for `layout`, one of `dtypes` (the first preferred) and the quantization kind."""
    quants = ("per_channel",) if qp.per_channel else ("per_tensor", "per_channel")

    def accepts(axes: Mapping[str, Any]) -> str | None:
        if axes.get("dtype") not in dtypes:
            return f"its float side is {axes.get('dtype')}, the call's is {dtypes[0]}"
        if axes.get("quant") not in quants:
            return "it takes one scale and zero point, the call has one per channel"
        return ew.layout_reason(axes, layout)

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        return (axes["layout"] == "generic", axes["dtype"] != dtypes[0], axes["quant"] != quants[0],
                *ew.wg_preference(entry, words))

    return ew.choose(manifest, dev, role=role, forced=forced, accepts=accepts, preference=preference,
                     what=f"layout {layout.name!r}, {dtypes[0]}, {quants[0]}")


def _step(dev: Device, entry: VariantEntry, layout: Layout, shape: tuple[int, int, int, int], qp: QuantParams,
          out: Buffer, data: np.ndarray | Buffer) -> Step:
    words = layout.words(shape)
    scale, zp = qp.scalars()
    buffers: dict[Any, Any] = {0: out, 1: data}
    if entry.axes["quant"] == "per_channel":
        buffers[2], buffers[3] = qp.arrays(shape[1])
    spec = {}
    if entry.axes["layout"] == "generic":
        buffers[4] = ew.metadata(layout, shape)
        spec = {s.name: layout.hashed_i32() for s in entry.spec_constants if s.name in ("OUT_HASH", "IN_HASH")}
    n, c, h, w = shape
    push = {"sizes": (w, h, c, n), "words": words, "zp": zp, "scale": scale}
    return ew.word_step(dev, entry, spec, buffers, push, words)


QuantRun = ew.Run  # what run_* return


def run_quantize(
    x: Any, scale: Any, zp: Any, *, layout: Any = None, packed: Any = None, variant: Any = None,
    device: Device | None = None, guard: bool = False, garbage: np.random.Generator | None = None,
    timestamps: bool = False,
) -> QuantRun:
    """quantize with the knobs tests and benchmarks need: guard bands around the output, the output
    buffer pre-filled with `garbage` (every word must be written), GPU timestamps."""
    manifest = load_manifest()
    xt = ew.tensor_arg(x, "x", dtypes=FLOAT_DTYPES, layout=None, layout_name="layout", manifest=manifest)
    _plain_float(xt)
    out_layout = ew.layout_arg(manifest, ew.DEFAULT_LAYOUT if layout is None else layout)
    qp = quant_params(scale, zp, xt.shape[1])
    dev = device_of(device)
    where = ew.placement(packed, ew.on_device(dev, xt))
    words = out_layout.words(xt.shape)
    # float16 widens exactly to float32, so a float32 variant serves float16 data it can convert on the host
    dtypes = (xt.dtype.name, "float32") if xt.dtype == np.float16 and not xt.on_device else (xt.dtype.name,)
    entry = _entry(manifest, dev, QUANTIZE, out_layout, dtypes, qp, words, variant)
    check_limits(dev, {"x": xt.nbytes, "the quantized output": 4 * words})  # before any host copy of a too large x
    data = xt.data()
    if isinstance(data, np.ndarray) and data.dtype.name != entry.axes["dtype"]:
        data = data.astype(entry.axes["dtype"])
    buf = ew.output_buffer(dev, "the quantized output", 4 * words, guard=guard, garbage=garbage)
    seconds = ew.run_into(dev, buf, lambda: _step(dev, entry, out_layout, xt.shape, qp, buf, data),
                          f"{entry.name} output", guard=guard, timestamps=timestamps)
    return QuantRun(ew.deliver(buf, out_layout, xt.shape, np.int8, where), entry.name, seconds)


def run_dequantize(
    q: Any, scale: Any, zp: Any, *, layout: Any = None, dtype: Any = "float32", packed: Any = None,
    variant: Any = None, device: Device | None = None, guard: bool = False,
    garbage: np.random.Generator | None = None, timestamps: bool = False,
) -> QuantRun:
    """dequantize with the knobs tests and benchmarks need: guard bands around the output, `garbage`
    in the input's padding bytes and in the output buffer before the dispatch, GPU timestamps."""
    manifest = load_manifest()
    qt = ew.tensor_arg(q, "q", dtypes=("int8",), layout=layout, layout_name="layout", manifest=manifest)
    out_dtype = _float_dtype(dtype)
    qp = quant_params(scale, zp, qt.shape[1])
    dev = device_of(device)
    where = ew.placement(packed, ew.on_device(dev, qt))
    words = qt.layout.words(qt.shape)
    # a float32 result narrowed on the host rounds exactly as the device's store would
    dtypes = (out_dtype.name, "float32") if out_dtype == np.float16 and where != "device" else (out_dtype.name,)
    entry = _entry(manifest, dev, DEQUANTIZE, qt.layout, dtypes, qp, words, variant)
    var_dtype = np.dtype(entry.axes["dtype"])
    check_limit(dev, "q", qt.nbytes)
    buf = ew.output_buffer(dev, "the dequantized output", var_dtype.itemsize * int(np.prod(qt.shape)), guard=guard,
                           garbage=garbage)
    seconds = ew.run_into(dev, buf, lambda: _step(dev, entry, qt.layout, qt.shape, qp, buf, qt.data(garbage)),
                          f"{entry.name} output", guard=guard, timestamps=timestamps)
    result = ew.deliver(buf, PLAIN, qt.shape, var_dtype, where)
    if var_dtype != out_dtype:  # host results only (see dtypes above)
        result = (result.astype(out_dtype) if isinstance(result, np.ndarray)
                  else Packed(np.asarray(result.data).astype(out_dtype), PLAIN, qt.shape, out_dtype))
    return QuantRun(result, entry.name, seconds)


def quantize(
    x: np.ndarray | Packed,
    scale: float | np.ndarray,
    zp: int | np.ndarray,
    *,
    layout: str | None = None,
    packed: bool | None = None,
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray | Packed:
    """float32/float16 NCHW -> int8 on the Vulkan device: q = clamp(roundEven(x / scale) + zp, -128, 127).

    In float32: float16 x widens exactly; x / scale is the one rounding before roundEven
    (runtime/families/q8ta_quantize/oracle.py). `scale` > 0 and `zp` in [-128, 127] are scalars, or
    (C,) arrays for per-channel quantization; scales must lie in [2^-126, 2^120] as float32.
    `x` is a NumPy array, or a Packed float tensor in plain NCHW order ('contig' layout).
    `layout` (default "4w4c") is the int8 layout the device writes. Result: an int8 NCHW array; with
    ``packed=True`` a Packed int8 tensor in `layout`; a device-resident x gives a device-resident
    Packed (unless ``packed=False``). `variant` forces a variant by name.
    """
    return run_quantize(x, scale, zp, layout=layout, packed=packed, variant=variant, device=device).result


def dequantize(
    q: np.ndarray | Packed,
    scale: float | np.ndarray,
    zp: int | np.ndarray,
    *,
    layout: str | None = None,
    dtype: str = "float32",
    packed: bool | None = None,
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray | Packed:
    """int8 -> float NCHW on the Vulkan device: y = float32(q - zp) * scale, stored as `dtype`.

    `q` is an int8 NCHW array, laid out in `layout` (default "4w4c") for the device, or a Packed int8
    tensor (its own layout; `layout`, if given, must agree). `scale` / `zp` as in :func:`quantize`.
    `dtype` is "float32" or "float16". Result: a float NCHW array; with ``packed=True`` a Packed
    float tensor in 'contig' layout; a device-resident q gives a device-resident Packed (unless
    ``packed=False``). `variant` forces a variant by name.
    """
    return run_dequantize(q, scale, zp, layout=layout, dtype=dtype, packed=packed, variant=variant,
                          device=device).result
