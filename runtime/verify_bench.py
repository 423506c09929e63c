"""The roofline probes of `python -m bench`: dispatch helpers, NumPy references and their checkers.

`bench_copy` must copy exactly; `bench_dot_peak` must equal :func:`dot_peak_reference`, the same
dot-product loop in NumPy. Registered with runtime.verify so tests/test_properties.py covers every
variant of both families, and used by bench/roofline.py to check what it times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.device import Buffer, Device, Step, default_device
from runtime.manifest import load_manifest
from runtime.verify import VerificationError, register

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def copy_step(dev: Device, entry: dict[str, Any], src: Buffer | np.ndarray, dst: Buffer, n_vec4: int,
              groups: int) -> Step:
    """dst[:n_vec4] = src[:n_vec4] (uvec4 elements) with `groups` workgroups striding over the buffer."""
    return Step(dev.pipeline(entry), {0: dst, 1: src}, {"n": int(n_vec4)}, (max(1, int(groups)), 1, 1))


def copy_groups(dev: Device, entry: dict[str, Any], n_vec4: int) -> int:
    """One uvec4 per thread where the grid limit allows; the stride loop takes the rest."""
    local = int(entry["local_size"][0])
    return max(1, min(-(-n_vec4 // local), int(dev.info.limits["maxComputeWorkGroupCount"][0])))


def dot_peak_tile(entry: dict[str, Any]) -> tuple[int, int]:
    """(rows, cols): a words and b words per thread of a dot-peak variant; rows*cols accumulators."""
    return int(entry["axes"]["tile"]["w"]), int(entry["axes"]["tile"]["c"])


def dot_peak_chains(entry: dict[str, Any]) -> int:
    """Independent accumulator chains per thread of a dot-peak variant."""
    rows, cols = dot_peak_tile(entry)
    return rows * cols


def dot_peak_ops(entry: dict[str, Any], threads: int, iters: int) -> int:
    """int8 operations one dispatch performs: 4 multiply-adds (8 ops) per dot4."""
    return 8 * threads * iters * dot_peak_chains(entry)


def dot_peak_step(dev: Device, entry: dict[str, Any], seeds: Buffer | np.ndarray, out: Buffer, iters: int,
                  groups: int) -> Step:
    """`groups` workgroups of the dot-peak loop, `iters` steps per chain; out holds one int per thread."""
    return Step(dev.pipeline(entry), {0: out, 1: seeds}, {"args": (int(iters), 0, 0, 0)}, (int(groups), 1, 1))


def dot_peak_reference(seeds: np.ndarray, tile: tuple[int, int], threads: int, iters: int, saturate: bool,
                       first: int = 0) -> np.ndarray:
    """What threads first .. first+threads-1 of the dot-peak shader write, computed the same way in NumPy.

    With (rows, cols) = tile and n = rows*cols: acc[r][c] starts at seeds[r*cols + c] ^ thread,
    a[r] = seeds[n + r] ^ thread, b[c] = seeds[n + rows + c]. Each step adds the dot product of the
    signed bytes of a[r] and b[c] to acc[r][c], saturating (OpSDotAccSat) or wrapping (OpSDot + add,
    the integer fallback), then rotates a by one; the result is the XOR of the final accumulators.
    """
    rows, cols = tile
    n = rows * cols
    seeds = np.asarray(seeds, dtype=np.int32)
    tid = np.arange(first, first + threads, dtype=np.int32)[:, None]
    acc = (seeds[None, :n] ^ tid).astype(np.int64).reshape(threads, rows, cols)
    a = (seeds[None, n : n + rows] ^ tid).view(np.int8).reshape(threads, rows, 4).astype(np.int64)
    b = seeds[n + rows : n + rows + cols].view(np.int8).reshape(cols, 4).astype(np.int64)
    for _ in range(iters):
        total = acc + np.einsum("trk,ck->trc", a, b)
        if saturate:
            acc = np.clip(total, INT32_MIN, INT32_MAX)
        else:
            acc = (total + 2**31) % 2**32 - 2**31  # two's complement wrap-around
        a = np.roll(a, -1, axis=1)
    return np.bitwise_xor.reduce(acc.reshape(threads, n).astype(np.int32), axis=1)


def seed_values(rng: np.random.Generator, chains: int, mode: str) -> np.ndarray:
    """Start values then b operands. Random starts never get near the int32 limits in a short run,
    so "extremes" starts next to them with edge bytes in b: saturation and wrap-around happen."""
    if mode == "extremes":
        edge = rng.choice(np.array([INT32_MAX, INT32_MIN], np.int64), size=chains)
        start = edge - np.sign(edge) * rng.integers(0, 2**16, size=chains)
        b = rng.choice(np.array([-128, 127, -1, 1], np.int8), size=4 * chains).view(np.int32)
        return np.concatenate([start.astype(np.int32), b])
    return rng.integers(INT32_MIN, INT32_MAX, size=2 * chains, dtype=np.int32, endpoint=True)


def check_copy(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """Copy `n` uvec4 with `groups` workgroups: exact, nothing written past n (guard band + sentinel tail)."""
    dev = device if device is not None else default_device()
    entry = load_manifest().variant(variant)
    n, tail = int(case["n"]), int(case.get("tail", 4))
    rng = np.random.default_rng(case["seed"])
    src = rng.integers(0, 2**32, size=4 * (n + tail), dtype=np.uint32)
    with dev.alloc(src.nbytes, guard=True, fill=0x5A) as dst:
        dev.run([copy_step(dev, entry, src, dst, n, case["groups"])])
        dst.check_guards(f"{variant} output")
        got = dst.read(np.uint32)
    bad = np.flatnonzero(got[: 4 * n] != src[: 4 * n])
    if bad.size:
        i = int(bad[0])
        raise VerificationError(
            f"bench_copy check of {variant} failed: {bad.size} of {4 * n} words differ; first at word {i}: "
            f"got {int(got[i]):#010x}, expected {int(src[i]):#010x}"
        )
    if np.any(got[4 * n :].view(np.uint8) != 0x5A):
        raise VerificationError(f"bench_copy check of {variant} failed: wrote past the {n} elements it was given")


def check_dot_peak(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """`groups` workgroups x `iters` steps; every thread's result equals the NumPy loop exactly."""
    dev = device if device is not None else default_device()
    entry = load_manifest().variant(variant)
    chains = dot_peak_chains(entry)
    threads = int(case["groups"]) * int(entry["local_size"][0])
    seeds = seed_values(np.random.default_rng(case["seed"]), chains, case.get("values", "random"))
    with dev.alloc(4 * threads, guard=True) as out:
        dev.run([dot_peak_step(dev, entry, seeds, out, case["iters"], case["groups"])])
        out.check_guards(f"{variant} output")
        got = out.read(np.int32)
    want = dot_peak_reference(seeds, dot_peak_tile(entry), threads, int(case["iters"]), entry["axes"]["dot"] == "dot")
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = int(bad[0])
        raise VerificationError(
            f"bench_dot_peak check of {variant} failed: {bad.size} of {threads} threads differ; first at thread "
            f"{i}: got {int(got[i])}, expected {int(want[i])}"
        )


register("bench_copy", {"bench_copy": check_copy})
register("bench_dot_peak", {"bench_dot_peak": check_dot_peak})
