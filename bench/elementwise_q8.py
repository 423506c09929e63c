"""Time the element-wise int8 ops (quantize, dequantize, add_q8, mul_q8) against NumPy doing the same.

Usage: ``python -m bench.elementwise_q8 [--shape N C H W] [--repeats R]``

For each op and each variant kind (the specialized layout and generic), prints the median GPU time of
the dispatch (timestamps), the median wall time of the whole call (packing, upload, dispatch, read
back, unpack) and the median time of the NumPy expression computing the same result on the host.
Informative only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from runtime.core.device import default_device
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_binary.op import run_binary
from runtime.families.q8ta_quantize.op import run_dequantize, run_quantize


def _median(f: Callable[[], Any], repeats: int) -> float:
    f()  # warm-up: pipeline creation, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _gpu(f: Callable[[], Any], repeats: int) -> float:
    f()
    return statistics.median(sum(f().seconds) for _ in range(repeats))


def _variant(role: str, **axes: Any) -> str:
    names = sorted(n for n, e in load_manifest().variants.items()
                   if e.role == role and all(e.axes.get(k) == v for k, v in axes.items()))
    return names[-1]  # the wg256 one where there are two


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.elementwise_q8", description=__doc__)
    p.add_argument("--shape", type=int, nargs=4, default=[1, 64, 56, 56])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    shape, reps = tuple(args.shape), args.repeats
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    x16 = x.astype(np.float16)
    q = rng.integers(-128, 128, shape, dtype=np.int8)
    r = rng.integers(-128, 128, shape, dtype=np.int8)
    ch = rng.integers(-128, 128, (1, shape[1], 1, 1), dtype=np.int8)
    s_ch = rng.uniform(0.01, 0.1, shape[1]).astype(np.float32)
    kw: dict[str, Any] = {"a_scale": 0.05, "a_zp": 3, "b_scale": 0.02, "b_zp": -1, "out_scale": 0.1, "out_zp": 2}
    a_ratio, b_ratio = np.float32(0.05 / 0.1), np.float32(0.02 / 0.1)

    def np_quantize(v: np.ndarray, s: Any) -> np.ndarray:
        return np.clip(np.rint(v.astype(np.float32) / s) + 3, -128, 127).astype(np.int8)

    cases: list[tuple[str, str, Callable[..., Any], Callable[[], Any]]] = []
    for layout in ("4w4c", "generic"):
        lay = "4w4c" if layout == "generic" else layout
        cases += [
            (f"quantize f32 {layout}", "quantize",
             lambda v, lay=lay, layout=layout, **k: run_quantize(
                 x, 0.05, 3, layout=lay, variant=_variant("quantize", layout=layout, dtype="float32",
                                                          quant="per_tensor"), **k),
             lambda: np_quantize(x, np.float32(0.05))),
            (f"quantize f16 {layout}", "quantize",
             lambda v, lay=lay, layout=layout, **k: run_quantize(
                 x16, 0.05, 3, layout=lay, variant=_variant("quantize", layout=layout, dtype="float16",
                                                            quant="per_tensor"), **k),
             lambda: np_quantize(x16, np.float32(0.05))),
            (f"quantize per-channel {layout}", "quantize",
             lambda v, lay=lay, layout=layout, **k: run_quantize(
                 x, s_ch, 3, layout=lay, variant=_variant("quantize", layout=layout, dtype="float32",
                                                          quant="per_channel"), **k),
             lambda: np_quantize(x, s_ch.reshape(1, -1, 1, 1))),
            (f"dequantize f32 {layout}", "dequantize",
             lambda v, lay=lay, layout=layout, **k: run_dequantize(
                 q, 0.05, 3, layout=lay, variant=_variant("dequantize", layout=layout, dtype="float32",
                                                          quant="per_tensor"), **k),
             lambda: (q.astype(np.int32) - 3).astype(np.float32) * np.float32(0.05)),
            (f"add same-shape {layout}", "binary_q8",
             lambda v, lay=lay, layout=layout, **k: run_binary(
                 "add", q, r, layout=lay, variant=_variant("binary_q8", layout=layout, op="add"), **kw, **k),
             lambda: np.clip(np.rint((q.astype(np.int32) - 3).astype(np.float32) * a_ratio
                                     + (r.astype(np.int32) + 1).astype(np.float32) * b_ratio) + 2,
                             -128, 127).astype(np.int8)),
            (f"mul per-channel {layout}", "binary_q8",
             lambda v, lay=lay, layout=layout, **k: run_binary(
                 "mul", q, ch, layout=lay, variant=_variant("binary_q8", layout=layout, op="mul"), **kw, **k),
             lambda: np.clip(np.rint(((q.astype(np.int32) - 3) * (ch.astype(np.int32) + 1)).astype(np.float32)
                                     * np.float32(0.05 * 0.02 / 0.1)) + 2, -128, 127).astype(np.int8)),
        ]
    print(f"{default_device().info.name}; shape {shape}; medians of {reps}")
    print(f"{'op':34} {'GPU ms':>8} {'call ms':>8} {'NumPy ms':>9} {'GPU/NumPy':>10} {'call/NumPy':>11}")
    for name, _, run, ref in cases:
        gpu = _gpu(partial(run, None, timestamps=True), reps)
        call = _median(partial(run, None), reps)
        host = _median(ref, reps)
        print(f"{name:34} {gpu * 1e3:8.3f} {call * 1e3:8.3f} {host * 1e3:9.3f} {gpu / host:10.2f} {call / host:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
