"""The device's ceilings, measured in the same run: one per kind of unit a variant runs on.

  copy        copy bandwidth (bench_copy): the ceiling of im2col and of every memory-bound pass
  packed-dot  packed int8 dot products (bench_dot_peak, modes `dot` / `sdot`): q8ta_gemm's dot/sdot variants
  int-alu     plain integer multiply-adds (bench_dot_peak, mode `int`): q8ta_gemm's `int` variants
  tensor      cooperative-matrix int8 MMAs (bench_coopmat_peak): q8ta_gemm_coopmat

A variant is compared with its own unit's peak only. A peak is the best passing probe variant; where a
kernel nonetheless runs faster than its unit's probe, the probe is wrong (it underestimates the unit):
:func:`raise_to_kernels` lifts that ceiling to the kernel's rate, so no row reports over 100 %, and the
report says loudly which probe was beaten and by what.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from bench import spec
from bench.measure import Stats, spin_up, summarize, time_steps
from bench.suite import RooflineSizes
from runtime.core.device import Device, Step
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import unrunnable
from runtime.families.bench_probes import op as vb
from runtime.families.bench_probes.oracle import coopmat_peak_reference, dot_peak_reference

Log = Callable[[str], None]
# threads whose dot-peak result (subgroups whose coopmat-peak tile) is recomputed in NumPy: first and last ones
CHECK_THREADS = 256
CHECK_SUBGROUPS = 64
UNITS = ("tensor", "packed-dot", "int-alu", "copy")
UNIT_PROBES = {"tensor": "bench_coopmat_peak", "packed-dot": "bench_dot_peak (dot/sdot)",
               "int-alu": "bench_dot_peak (int)", "copy": "bench_copy"}


def unit_of(entry: VariantEntry) -> str:
    """Which unit's peak a variant is compared with (see the module's docstring)."""
    axes = entry.axes
    if "coop" in axes or any(f.startswith("cooperativeMatrix") for f in entry.features):
        return "tensor"
    if axes.get("dot") in ("dot", "sdot"):
        return "packed-dot"
    if axes.get("dot") == "int":
        return "int-alu"
    return "copy"


@dataclass
class Probe:
    """One probe variant's measurement: GB/s for copies, TOPS otherwise."""

    variant: str
    kind: str  # "copy" | "dot" | "sdot" | "int" | "coopmat"
    stats: Stats | None
    value: float | None
    check: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "kind": self.kind, "value": self.value, "check": self.check,
                "detail": self.detail, "stats": self.stats.to_json() if self.stats else None}


@dataclass
class Roofline:
    """The peak of every unit (TOPS; GB/s for copy), the probes behind them, and the spec-sheet number."""

    peaks: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # unit -> probe variant that set its peak
    raised: dict[str, str] = field(default_factory=dict)  # unit -> why a kernel set its peak instead
    dot_mode: str | None = None  # "dot" or "sdot": the packed mode that set the packed-dot peak
    spec: str = ""  # the spec-sheet dense int8 line of this device
    probes: list[Probe] = field(default_factory=list)

    @property
    def copy_gbps(self) -> float | None:
        return self.peaks.get("copy")

    @property
    def dot_tops(self) -> float | None:
        return self.peaks.get("packed-dot")

    @property
    def coop_tops(self) -> float | None:
        return self.peaks.get("tensor")

    def peak(self, unit: str) -> float | None:
        return self.peaks.get(unit)

    def best(self, kind: str) -> Probe | None:
        ok = [p for p in self.probes if p.kind == kind and p.value is not None and p.check == "ok"]
        return max(ok, key=lambda p: p.value or 0.0) if ok else None

    def attainable_tops(self, ops: float, nbytes: float, unit: str) -> float | None:
        """Roofline ceiling min(unit peak, intensity * bandwidth) for `ops` over `nbytes` of compulsory traffic."""
        peak = self.peak(unit)
        if peak is None:
            return None
        if self.copy_gbps is None or nbytes <= 0:
            return peak
        return min(peak, ops / nbytes * self.copy_gbps * 1e9 / 1e12)

    def to_json(self) -> dict[str, Any]:
        return {"peaks": self.peaks, "sources": self.sources, "raised": self.raised, "dot_mode": self.dot_mode,
                "copy_gbps": self.copy_gbps, "dot_tops": self.dot_tops, "coop_tops": self.coop_tops,
                "spec_int8": self.spec, "probes": [p.to_json() for p in self.probes]}


def raise_to_kernels(roof: Roofline, rates: Iterable[tuple[str, str, float]]) -> list[str]:
    """Lift each unit's peak to the fastest kernel of that unit where one beat its probe.

    `rates`: (unit, variant, TOPS or GB/s) of every timed row whose check passed. Returns the units
    whose peak moved; roof.raised says by whom, and what the probe had measured."""
    best: dict[str, tuple[float, str]] = {}
    for unit, variant, value in rates:
        if value is not None and (unit not in best or value > best[unit][0]):
            best[unit] = (value, variant)
    moved = []
    for unit, (value, variant) in best.items():
        peak = roof.peak(unit)
        if peak is not None and value > peak:
            probe = roof.sources.get(unit, UNIT_PROBES[unit])
            roof.raised[unit] = (f"`{variant}` reached {value:.4g}, over the probe `{probe}` ({peak:.4g}): the probe "
                                 "underestimates this unit, so the kernel's rate is the ceiling here")
            roof.peaks[unit] = value
            roof.sources[unit] = variant
            moved.append(unit)
    return moved


def _variants(manifest: Manifest, role: str, only: Callable[[str], bool]) -> list[VariantEntry]:
    return [manifest.variants[n] for n in manifest.names(role=role) if only(n)]


def measure_copy(dev: Device, manifest: Manifest, nbytes: int, reps: int, warmup: int, log: Log,
                 only: Callable[[str], bool] = lambda n: True, spin_s: float = 0.0) -> list[Probe]:
    """Time every bench_copy variant on one `nbytes` buffer; bandwidth counts bytes read + written."""
    limit = int(dev.info.limits["maxStorageBufferRange"])
    nbytes = max(16, min(nbytes, limit) // 16 * 16)
    n_vec4 = nbytes // 16
    src_host = np.random.default_rng(0).integers(0, 256, size=nbytes, dtype=np.uint8)
    probes = []
    with dev.upload(src_host) as src, dev.alloc(nbytes) as dst:
        for entry in _variants(manifest, "bench_copy", only):
            name = entry.name
            if (unfit := unrunnable(entry, dev)) is not None:
                probes.append(Probe(name, "copy", None, None, "n/a", unfit))
                continue
            try:
                dst.fill(0)  # so the check below sees this variant's copy, not the previous one's
                step = vb.copy_step(dev, entry, src, dst, n_vec4, vb.copy_groups(dev, entry, n_vec4))
                spin_up(dev, [step], spin_s)
                stats = summarize([r[0] for r in time_steps(dev, [step], reps, warmup)])
                ok = np.array_equal(dst.read(np.uint8), src_host)
            except Exception as exc:  # a driver rejecting a probe must not end an unattended run
                probes.append(Probe(name, "copy", None, None, f"error: {type(exc).__name__}: {exc}"[:300]))
                continue
            gbps = 2 * nbytes / stats.median / 1e9
            probes.append(Probe(name, "copy", stats, gbps, "ok" if ok else "FAILED: copy differs from its source",
                                f"{nbytes / 2**20:.0f} MiB"))
            log(f"roofline: {name}: {gbps:.1f} GB/s ({nbytes / 2**20:.0f} MiB, median {stats.median * 1e3:.3f} ms)")
    return probes


def calibrate(dev: Device, make: Callable[[int], Step], target_s: float, start: int = 16) -> int:
    """Iterations for one dispatch of `make(iters)` to last about `target_s`, so launch overhead does not count."""
    iters = start
    dev.run([make(iters)])  # untimed: a driver that compiles at the first dispatch must not shorten the loop
    while iters < 1 << 22:
        seconds = dev.run([make(iters)], timestamps=True)
        t = seconds[0] if seconds else 0.0
        if t >= target_s:
            break
        iters *= int(min(16, max(2, target_s / max(t, 1e-9))))
    return iters


def measure_dot_peak(dev: Device, manifest: Manifest, sizes: RooflineSizes, reps: int, warmup: int, log: Log,
                     only: Callable[[str], bool] = lambda n: True) -> list[Probe]:
    """Time every bench_dot_peak variant; TOPS counts 8 int8 ops (4 multiply-adds) per dot4."""
    probes = []
    for entry in _variants(manifest, "bench_dot_peak", only):
        name, mode = entry.name, entry.axes["dot"]
        if (unfit := unrunnable(entry, dev)) is not None:
            probes.append(Probe(name, mode, None, None, "n/a", unfit))
            continue
        local = int(entry.local_size[0])
        max_groups = int(dev.info.limits["maxComputeWorkGroupCount"][0])
        groups = max(1, min(sizes.dot_threads // local, max_groups))
        threads = groups * local
        chains = vb.dot_peak_chains(entry)
        seeds = vb.seed_values(np.random.default_rng(1), chains, "random")
        try:
            with dev.upload(seeds) as seed_buf, dev.alloc(4 * threads) as out:
                make = partial(vb.dot_peak_step, dev, entry, seed_buf, out, groups=groups)
                iters = calibrate(dev, make, sizes.dot_target_s, sizes.dot_start_iters)
                step = make(iters)
                spin_up(dev, [step], sizes.spin_s)
                stats = summarize([r[0] for r in time_steps(dev, [step], reps, warmup)])
                got = out.read(np.int32)
        except Exception as exc:  # a driver rejecting a probe must not end an unattended run
            probes.append(Probe(name, mode, None, None, f"error: {type(exc).__name__}: {exc}"[:300]))
            continue
        check = _check_dot_peak(got, seeds, vb.dot_peak_tile(entry), iters, mode == "dot")
        tops = vb.dot_peak_ops(entry, threads, iters) / stats.median / 1e12
        probes.append(Probe(name, mode, stats, tops, check, f"{threads} threads x {chains} chains x {iters} iters"))
        log(f"roofline: {name}: {tops:.3f} TOPS ({threads} threads x {chains} chains x {iters} iters, "
            f"median {stats.median * 1e3:.3f} ms)")
    return probes


def _check_dot_peak(got: np.ndarray, seeds: np.ndarray, tile: tuple[int, int], iters: int, saturate: bool) -> str:
    threads = got.size
    k = min(CHECK_THREADS, threads)
    for first in sorted({0, threads - k}):
        want = dot_peak_reference(seeds, tile, k, iters, saturate, first=first)
        bad = np.flatnonzero(got[first : first + k] != want)
        if bad.size:
            i = first + int(bad[0])
            return f"FAILED: thread {i} wrote {int(got[i])}, NumPy says {int(want[i - first])}"
    return "ok"


def measure_coopmat_peak(dev: Device, manifest: Manifest, sizes: RooflineSizes, reps: int, warmup: int, log: Log,
                         only: Callable[[str], bool] = lambda n: True) -> list[Probe]:
    """Time every bench_coopmat_peak variant; TOPS counts 2*m*n*k ops per MMA."""
    probes = []
    for entry in _variants(manifest, "bench_coopmat_peak", only):
        name = entry.name
        if (unfit := unrunnable(entry, dev)) is not None:
            probes.append(Probe(name, "coopmat", None, None, "n/a", unfit))
            continue
        per_group = vb.coopmat_peak_subgroups(entry)
        max_groups = int(dev.info.limits["maxComputeWorkGroupCount"][0])
        groups = max(1, min(sizes.coop_subgroups // per_group, max_groups))
        subgroups = groups * per_group
        m, n, k = vb.coopmat_peak_shape(entry)
        a, b, starts = vb.coopmat_peak_seeds(np.random.default_rng(2), entry)
        try:
            with dev.upload(vb.coopmat_peak_words(a, b, starts)) as seed_buf, dev.alloc(4 * m * n * subgroups) as out:
                make = partial(vb.coopmat_peak_step, dev, entry, seed_buf, out, groups=groups)
                iters = calibrate(dev, make, sizes.dot_target_s, sizes.dot_start_iters)
                step = make(iters)
                spin_up(dev, [step], sizes.spin_s)
                stats = summarize([r[0] for r in time_steps(dev, [step], reps, warmup)])
                got = out.read(np.int32).reshape(subgroups, m, n)
        except Exception as exc:  # a driver rejecting a probe must not end an unattended run
            probes.append(Probe(name, "coopmat", None, None, f"error: {type(exc).__name__}: {exc}"[:300]))
            continue
        check = _check_coopmat_peak(got, a, b, starts, iters)
        tops = vb.coopmat_peak_ops(entry, subgroups, iters) / stats.median / 1e12
        ta, tb = vb.coopmat_peak_tiles(entry)
        detail = f"{subgroups} subgroups x {ta * tb} tiles x {2 * iters + 1} MMAs of m{m}n{n}k{k}"
        probes.append(Probe(name, "coopmat", stats, tops, check, detail))
        log(f"roofline: {name}: {tops:.1f} TOPS ({detail}, median {stats.median * 1e3:.3f} ms)")
    return probes


def _check_coopmat_peak(got: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray, iters: int) -> str:
    subgroups = got.shape[0]
    k = min(CHECK_SUBGROUPS, subgroups)
    for first in sorted({0, subgroups - k}):
        want = coopmat_peak_reference(a, b, starts, iters, k, first=first)
        bad = np.argwhere(got[first : first + k] != want)
        if bad.size:
            s, r, c = (int(x) for x in bad[0])
            return f"FAILED: subgroup {first + s} wrote {int(got[first + s, r, c])} at ({r}, {c}), " \
                   f"NumPy says {int(want[s, r, c])}"
    return "ok"


def measure(dev: Device, manifest: Manifest, sizes: RooflineSizes, reps: int, warmup: int, log: Log,
            only: Callable[[str], bool] = lambda n: True) -> Roofline:
    """Every probe; each unit's peak is its best passing probe variant."""
    roof = Roofline(spec=spec.describe(dev.info.name))
    roof.probes += measure_copy(dev, manifest, sizes.copy_bytes, reps, warmup, log, only, sizes.spin_s)
    roof.probes += measure_dot_peak(dev, manifest, sizes, reps, warmup, log, only)
    roof.probes += measure_coopmat_peak(dev, manifest, sizes, reps, warmup, log, only)
    packed = [p for p in (roof.best("dot"), roof.best("sdot")) if p is not None]
    candidates = {"copy": roof.best("copy"), "int-alu": roof.best("int"), "tensor": roof.best("coopmat"),
                  "packed-dot": max(packed, key=lambda p: p.value or 0.0) if packed else None}
    for unit, probe in candidates.items():
        if probe is not None and probe.value is not None:
            roof.peaks[unit], roof.sources[unit] = probe.value, probe.variant
    if candidates["packed-dot"] is not None:
        roof.dot_mode = candidates["packed-dot"].kind
    return roof
