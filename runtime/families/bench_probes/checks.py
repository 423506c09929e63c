"""Checks of the bench probes: `bench_copy` must copy exactly, `bench_dot_peak` and `bench_coopmat_peak`
must equal the oracle's NumPy loops. The bench also runs them on what it times (bench/roofline.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.core.device import Device, default_device
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.core.registry import Level, VerificationError

from .op import (
    coopmat_peak_seeds,
    coopmat_peak_shape,
    coopmat_peak_step,
    coopmat_peak_subgroups,
    coopmat_peak_words,
    copy_step,
    dot_peak_chains,
    dot_peak_step,
    dot_peak_tile,
    seed_values,
)
from .oracle import coopmat_peak_reference, dot_peak_reference

ROLES = ("bench_copy", "bench_dot_peak", "bench_coopmat_peak")


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
    threads = int(case["groups"]) * int(entry.local_size[0])
    seeds = seed_values(np.random.default_rng(case["seed"]), chains, case.get("values", "random"))
    with dev.alloc(4 * threads, guard=True) as out:
        dev.run([dot_peak_step(dev, entry, seeds, out, case["iters"], case["groups"])])
        out.check_guards(f"{variant} output")
        got = out.read(np.int32)
    want = dot_peak_reference(seeds, dot_peak_tile(entry), threads, int(case["iters"]), entry.axes["dot"] == "dot")
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = int(bad[0])
        raise VerificationError(
            f"bench_dot_peak check of {variant} failed: {bad.size} of {threads} threads differ; first at thread "
            f"{i}: got {int(got[i])}, expected {int(want[i])}"
        )


def check_coopmat_peak(variant: str, case: dict[str, Any], device: Device | None) -> None:
    """`groups` workgroups x `iters` MMA steps; every subgroup's tile equals the NumPy loop exactly."""
    dev = device if device is not None else default_device()
    entry = load_manifest().variant(variant)
    m, n, _ = coopmat_peak_shape(entry)
    subgroups = int(case["groups"]) * coopmat_peak_subgroups(entry)
    a, b, starts = coopmat_peak_seeds(np.random.default_rng(case["seed"]), entry)
    with dev.alloc(4 * m * n * subgroups, guard=True) as out:
        dev.run([coopmat_peak_step(dev, entry, coopmat_peak_words(a, b, starts), out, case["iters"], case["groups"])])
        out.check_guards(f"{variant} output")
        got = out.read(np.int32).reshape(subgroups, m, n)
    want = coopmat_peak_reference(a, b, starts, int(case["iters"]), subgroups)
    bad = np.argwhere(got != want)
    if bad.size:
        s, r, c = (int(x) for x in bad[0])
        raise VerificationError(
            f"bench_coopmat_peak check of {variant} failed: {len(bad)} of {got.size} values differ; first at "
            f"subgroup {s}, row {r}, column {c}: got {int(got[s, r, c])}, expected {int(want[s, r, c])}"
        )


def _copy_cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import bench_copy_cases

    return bench_copy_cases


def _dot_peak_cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import bench_dot_peak_cases

    return bench_dot_peak_cases


def _coopmat_peak_cases(entry: VariantEntry, manifest: Manifest) -> Any:
    from .strategies import bench_coopmat_peak_cases

    return bench_coopmat_peak_cases


LEVELS = (
    Level("bench_copy", ("bench_copy",), check_copy, _copy_cases, "exact copy, nothing written past n"),
    Level("bench_dot_peak", ("bench_dot_peak",), check_dot_peak, _dot_peak_cases,
          "every thread's XOR of accumulators equals the NumPy loop"),
    Level("bench_coopmat_peak", ("bench_coopmat_peak",), check_coopmat_peak, _coopmat_peak_cases,
          "every subgroup's sum of accumulator tiles equals the NumPy loop"),
)
