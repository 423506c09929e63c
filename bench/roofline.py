"""The device's ceilings, measured in the same run: copy bandwidth and packed int8 dot-product peak."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.measure import Stats, spin_up, summarize, time_steps
from bench.suite import RooflineSizes
from runtime.core.device import Device
from runtime.core.errors import ShaderkitError
from runtime.core.manifest import Manifest, VariantEntry
from runtime.families.bench_probes import op as vb
from runtime.families.bench_probes.oracle import dot_peak_reference

Log = Callable[[str], None]
# threads whose dot-peak result is recomputed in NumPy (first and last ones of the grid)
CHECK_THREADS = 256


@dataclass
class Probe:
    """One probe variant's measurement: GB/s for copies, TOPS for dot peaks."""

    variant: str
    kind: str  # "copy" | "dot" | "sdot" | "int"
    stats: Stats | None
    value: float | None
    check: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "kind": self.kind, "value": self.value, "check": self.check,
                "detail": self.detail, "stats": self.stats.to_json() if self.stats else None}


@dataclass
class Roofline:
    """Best copy bandwidth (GB/s) and int8 dot peak (TOPS) the probes reached, plus every probe."""

    copy_gbps: float | None = None
    dot_tops: float | None = None
    dot_mode: str | None = None  # which dot mode set `dot_tops`: "dot"/"sdot", or "int" where the device lacks both
    probes: list[Probe] = field(default_factory=list)

    def best(self, kind: str) -> Probe | None:
        ok = [p for p in self.probes if p.kind == kind and p.value is not None and p.check == "ok"]
        return max(ok, key=lambda p: p.value or 0.0) if ok else None

    def attainable_tops(self, ops: float, nbytes: float) -> float | None:
        """Roofline ceiling min(peak, intensity * bandwidth) for `ops` over `nbytes` of compulsory traffic."""
        if self.dot_tops is None:
            return None
        if self.copy_gbps is None or nbytes <= 0:
            return self.dot_tops
        return min(self.dot_tops, ops / nbytes * self.copy_gbps * 1e9 / 1e12)

    def to_json(self) -> dict[str, Any]:
        return {"copy_gbps": self.copy_gbps, "dot_tops": self.dot_tops, "dot_mode": self.dot_mode,
                "probes": [p.to_json() for p in self.probes]}


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
            missing = dev.supports(entry.features)
            if missing:
                probes.append(Probe(name, "copy", None, None, "n/a", f"device lacks {', '.join(missing)}"))
                continue
            try:
                dst.fill(0)  # so the check below sees this variant's copy, not the previous one's
                step = vb.copy_step(dev, entry, src, dst, n_vec4, vb.copy_groups(dev, entry, n_vec4))
                spin_up(dev, [step], spin_s)
                stats = summarize([r[0] for r in time_steps(dev, [step], reps, warmup)])
                ok = np.array_equal(dst.read(np.uint8), src_host)
            except (ShaderkitError, ValueError) as exc:
                probes.append(Probe(name, "copy", None, None, f"error: {exc}"))
                continue
            gbps = 2 * nbytes / stats.median / 1e9
            probes.append(Probe(name, "copy", stats, gbps, "ok" if ok else "FAILED: copy differs from its source",
                                f"{nbytes / 2**20:.0f} MiB"))
            log(f"roofline: {name}: {gbps:.1f} GB/s ({nbytes / 2**20:.0f} MiB, median {stats.median * 1e3:.3f} ms)")
    return probes


def _calibrate(dev: Device, entry: VariantEntry, seeds: Any, out: Any, groups: int, sizes: RooflineSizes) -> int:
    """Iterations for one dispatch to last about `dot_target_s`, so launch overhead does not count."""
    iters = sizes.dot_start_iters
    while iters < 1 << 22:
        seconds = dev.run([vb.dot_peak_step(dev, entry, seeds, out, iters, groups)], timestamps=True)
        t = seconds[0] if seconds else 0.0
        if t >= sizes.dot_target_s:
            break
        iters *= int(min(16, max(2, sizes.dot_target_s / max(t, 1e-9))))
    return iters


def measure_dot_peak(dev: Device, manifest: Manifest, sizes: RooflineSizes, reps: int, warmup: int, log: Log,
                     only: Callable[[str], bool] = lambda n: True) -> list[Probe]:
    """Time every bench_dot_peak variant; TOPS counts 8 int8 ops (4 multiply-adds) per dot4."""
    probes = []
    for entry in _variants(manifest, "bench_dot_peak", only):
        name, mode = entry.name, entry.axes["dot"]
        missing = dev.supports(entry.features)
        if missing:
            probes.append(Probe(name, mode, None, None, "n/a", f"device lacks {', '.join(missing)}"))
            continue
        local = int(entry.local_size[0])
        max_groups = int(dev.info.limits["maxComputeWorkGroupCount"][0])
        groups = max(1, min(sizes.dot_threads // local, max_groups))
        threads = groups * local
        chains = vb.dot_peak_chains(entry)
        seeds = vb.seed_values(np.random.default_rng(1), chains, "random")
        try:
            with dev.upload(seeds) as seed_buf, dev.alloc(4 * threads) as out:
                iters = _calibrate(dev, entry, seed_buf, out, groups, sizes)
                step = vb.dot_peak_step(dev, entry, seed_buf, out, iters, groups)
                spin_up(dev, [step], sizes.spin_s)
                stats = summarize([r[0] for r in time_steps(dev, [step], reps, warmup)])
                got = out.read(np.int32)
        except (ShaderkitError, ValueError) as exc:
            probes.append(Probe(name, mode, None, None, f"error: {exc}"))
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


def measure(dev: Device, manifest: Manifest, sizes: RooflineSizes, reps: int, warmup: int, log: Log,
            only: Callable[[str], bool] = lambda n: True) -> Roofline:
    """Both probes; the ceilings are the best passing variant of each (the `dot` mode where the device has it)."""
    roof = Roofline()
    roof.probes += measure_copy(dev, manifest, sizes.copy_bytes, reps, warmup, log, only, sizes.spin_s)
    roof.probes += measure_dot_peak(dev, manifest, sizes, reps, warmup, log, only)
    copy = roof.best("copy")
    roof.copy_gbps = copy.value if copy else None
    # the packed modes (saturating `dot`, wrapping `sdot`) set the peak; `int` only where neither runs
    packed = [b for b in (roof.best("dot"), roof.best("sdot")) if b is not None]
    best = max(packed, key=lambda p: p.value or 0.0) if packed else roof.best("int")
    if best is not None:
        roof.dot_tops, roof.dot_mode = best.value, best.kind
    return roof
