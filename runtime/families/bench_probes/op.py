"""bench_probes: the dispatches of the roofline probes (bench_copy, bench_dot_peak) the bench times."""

from __future__ import annotations

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.manifest import VariantEntry

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def copy_step(dev: Device, entry: VariantEntry, src: Buffer | np.ndarray, dst: Buffer, n_vec4: int,
              groups: int) -> Step:
    """dst[:n_vec4] = src[:n_vec4] (uvec4 elements) with `groups` workgroups striding over the buffer."""
    return Step(dev.pipeline(entry), {0: dst, 1: src}, {"n": int(n_vec4)}, (max(1, int(groups)), 1, 1))


def copy_groups(dev: Device, entry: VariantEntry, n_vec4: int) -> int:
    """One uvec4 per thread where the grid limit allows; the stride loop takes the rest."""
    local = int(entry.local_size[0])
    return max(1, min(-(-n_vec4 // local), int(dev.info.limits["maxComputeWorkGroupCount"][0])))


def dot_peak_tile(entry: VariantEntry) -> tuple[int, int]:
    """(rows, cols): a words and b words per thread of a dot-peak variant; rows*cols accumulators."""
    return int(entry.axes["tile"]["w"]), int(entry.axes["tile"]["c"])


def dot_peak_chains(entry: VariantEntry) -> int:
    """Independent accumulator chains per thread of a dot-peak variant."""
    rows, cols = dot_peak_tile(entry)
    return rows * cols


def dot_peak_ops(entry: VariantEntry, threads: int, iters: int) -> int:
    """int8 operations one dispatch performs: 4 multiply-adds (8 ops) per dot4."""
    return 8 * threads * iters * dot_peak_chains(entry)


def dot_peak_step(dev: Device, entry: VariantEntry, seeds: Buffer | np.ndarray, out: Buffer, iters: int,
                  groups: int) -> Step:
    """`groups` workgroups of the dot-peak loop, `iters` steps per chain; out holds one int per thread."""
    return Step(dev.pipeline(entry), {0: out, 1: seeds}, {"args": (int(iters), 0, 0, 0)}, (int(groups), 1, 1))


def seed_values(rng: np.random.Generator, chains: int, mode: str) -> np.ndarray:
    """Start values then b operands. Random starts never get near the int32 limits in a short run,
    so "extremes" starts next to them with edge bytes in b: saturation and wrap-around happen."""
    if mode == "extremes":
        edge = rng.choice(np.array([INT32_MAX, INT32_MIN], np.int64), size=chains)
        start = edge - np.sign(edge) * rng.integers(0, 2**16, size=chains)
        b = rng.choice(np.array([-128, 127, -1, 1], np.int8), size=4 * chains).view(np.int32)
        return np.concatenate([start.astype(np.int32), b])
    return rng.integers(INT32_MIN, INT32_MAX, size=2 * chains, dtype=np.int32, endpoint=True)
