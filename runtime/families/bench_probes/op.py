"""bench_probes: the dispatches of the roofline probes (bench_copy, bench_dot_peak, bench_coopmat_peak) the
bench times, their operands and operation counts."""

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


# -- the tensor-core (cooperative-matrix) peak ------------------------------------------------------------


def coopmat_peak_shape(entry: VariantEntry) -> tuple[int, int, int]:
    """(m, n, k) of one MMA of a coopmat-peak variant."""
    coop = entry.axes["coop"]
    return int(coop["m"]), int(coop["n"]), int(coop["k"])


def coopmat_peak_tiles(entry: VariantEntry) -> tuple[int, int]:
    """(A tiles, B tiles) a subgroup holds; one accumulator tile per pair."""
    return int(entry.axes["tile"]["w"]), int(entry.axes["tile"]["c"])


def coopmat_peak_subgroups(entry: VariantEntry) -> int:
    """Subgroups per workgroup (the template assumes `subgroup_size` threads each)."""
    return int(entry.local_size[0]) // int(entry.params["subgroup_size"])


def coopmat_peak_ops(entry: VariantEntry, subgroups: int, iters: int) -> int:
    """int8 operations of one dispatch: 2*m*n*k per MMA, (2 * iters + 1) MMAs per accumulator tile."""
    m, n, k = coopmat_peak_shape(entry)
    ta, tb = coopmat_peak_tiles(entry)
    return 2 * m * n * k * ta * tb * (2 * iters + 1) * subgroups


def coopmat_peak_seeds(rng: np.random.Generator, entry: VariantEntry) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Random operands of the probe: A tiles (TA, m, k) and B tiles (TB, k, n) int8 over the full range
    (B in [-127, 127], so -B is an int8 too), and TA*TB int32 start values small enough that no sum of
    them and the products can overflow."""
    m, n, k = coopmat_peak_shape(entry)
    ta, tb = coopmat_peak_tiles(entry)
    a = rng.integers(-128, 128, size=(ta, m, k), dtype=np.int8)
    b = rng.integers(-127, 128, size=(tb, k, n), dtype=np.int8)
    starts = rng.integers(-(2**23), 2**23, size=ta * tb, dtype=np.int32)
    return a, b, starts


def coopmat_peak_words(a: np.ndarray, b: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The t_seed buffer: A tiles row-major, B tiles column-major, -B tiles column-major, start values."""
    b_cols = np.ascontiguousarray(b.transpose(0, 2, 1))  # (TB, n, k): column c of B is contiguous
    parts = [np.ascontiguousarray(a).view(np.uint32).reshape(-1), b_cols.view(np.uint32).reshape(-1),
             np.ascontiguousarray(-b_cols).view(np.uint32).reshape(-1), starts.astype(np.int32).view(np.uint32)]
    return np.concatenate(parts)


def coopmat_peak_step(dev: Device, entry: VariantEntry, seeds: Buffer | np.ndarray, out: Buffer, iters: int,
                      groups: int) -> Step:
    """`groups` workgroups of the MMA loop, `iters` steps; out holds one m x n int32 tile per subgroup."""
    return Step(dev.pipeline(entry), {0: out, 1: seeds}, {"args": (int(iters), 0, 0, 0)}, (int(groups), 1, 1))
