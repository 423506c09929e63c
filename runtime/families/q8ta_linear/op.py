"""Host side of the int8 linear layer: check arguments, pick a GEMM variant, pack, dispatch.

y = x @ weight.T is the GEMM of the conv family with one group and x itself as the matrix: rows are
x's rows, the reduction runs over K (padded to a multiple of 4 with x_zp in x and 0 in the weights,
so the padding adds nothing), the output channels are weight's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.device import Device
from runtime.core.manifest import load_manifest
from runtime.oplib import validate
from runtime.oplib.conv import check_limits, device_of
from runtime.oplib.gemm_formats import pack_matrix_4w4c, pack_weights_q8, unpack_output_4c
from runtime.oplib.gemm_q8 import GemmGeometry, gemm_entry, gemm_step
from runtime.oplib.requant import MAX_K, check_requant, check_storage, scale_dtype


@dataclass
class LinearRun:
    """The output and what served it, for tests and benchmarks."""

    output: np.ndarray
    variant: str
    geometry: GemmGeometry
    seconds: list[float] | None = None


def linear_geometry(x: Any, weight: Any) -> tuple[np.ndarray, np.ndarray, GemmGeometry]:
    """Check x (M, K) and weight (N, K); ValueError/TypeError naming the argument."""
    x = validate.int8_array(x, "x", 2)
    weight = validate.int8_array(weight, "weight", 2)
    (M, K), (N, Kw) = x.shape, weight.shape
    if Kw != K:
        raise ValueError(f"weight.shape={weight.shape} must be (N, K={K}) for x.shape={x.shape}")
    K4 = -(-K // 4)
    if 4 * K4 > MAX_K:
        raise ValueError(f"x.shape={x.shape}: reduction length {4 * K4} exceeds {MAX_K}, "
                         "where int32 accumulators could overflow")
    return x, weight, GemmGeometry(1, M, K4, N)


def padded_k(a: np.ndarray, K4: int, value: int) -> np.ndarray:
    """`a` (rows, K) with columns K .. 4*K4-1 set to `value`."""
    out = np.full((a.shape[0], 4 * K4), value, np.int8)
    out[:, : a.shape[1]] = a
    return out


def run_linear_q8(
    x: Any, weight: Any, w_scales: Any, bias: Any, *, x_scale: Any, x_zp: Any, out_scale: Any, out_zp: Any,
    activation: Any = "none", variant: str | None = None, device: Device | None = None, guard: bool = False,
    timestamps: bool = False,
) -> LinearRun:
    """linear_q8 with the knobs tests and benchmarks need (guard bands, timing, the variant used)."""
    x, weight, geom = linear_geometry(x, weight)
    rq = check_requant(w_scales, bias, geom.OCg, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale, out_zp=out_zp,
                       activation=activation)
    manifest = load_manifest()
    dev = device_of(device)
    entry = gemm_entry(manifest, dev, geom.OCg, geom.M, scale_dtype(rq), variant, arg="variant", K4=geom.K4)
    check_storage(manifest, entry, rq)
    check_limits(dev, {"x": geom.a_bytes, "weight": 4 * geom.K4 * geom.OCg, "output": geom.out_bytes})
    a_words = pack_matrix_4w4c(padded_k(x, geom.K4, rq.x_zp)[None])
    # a (N, Kp, 1, 1) conv weight packs to exactly the (Kp x N) GEMM operand, padded k holding 0
    w_words, wsum = pack_weights_q8(padded_k(weight, geom.K4, 0)[:, :, None, None], 1)
    with dev.alloc(geom.out_bytes, guard=guard) as out_buf:
        seconds = dev.run([gemm_step(dev, manifest, entry, geom, a_words, w_words, wsum, rq, out_buf)],
                          timestamps=timestamps)
        if guard:
            out_buf.check_guards(f"{entry.name} output")
        out = unpack_output_4c(out_buf.read(np.int32), 1, geom.M, geom.OCg)[0]
    return LinearRun(out, entry.name, geom, seconds)


def linear_q8(
    x: np.ndarray,
    weight: np.ndarray,
    w_scales: np.ndarray,
    bias: np.ndarray | None,
    *,
    x_scale: float,
    x_zp: int,
    out_scale: float,
    out_zp: int,
    activation: str = "none",
    variant: str | None = None,
    device: Device | None = None,
) -> np.ndarray:
    """Quantized int8 linear layer on the Vulkan device; returns int8 (M, N).

    x: int8 (M, K); weight: int8 (N, K), symmetric per output channel; w_scales (N,) float32 or
    float16; bias (N,) or None. acc[m, n] = sum_k (x[m, k] - x_zp) * weight[n, k];
    y = acc * x_scale * w_scales[n] + bias[n]; ReLU if asked; q = clamp(round(y / out_scale) + out_zp).
    Served by the int8 GEMM variants (role `gemm`); `variant` forces one by name.
    """
    return run_linear_q8(x, weight, w_scales, bias, x_scale=x_scale, x_zp=x_zp, out_scale=out_scale,
                         out_zp=out_zp, activation=activation, variant=variant, device=device).output
