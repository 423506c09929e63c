"""Benchmarks of our int8 variants per shape: GEMM alone, im2col alone, and the whole conv."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.measure import DeviceInputs, Stats, time_total
from bench.peer import Peer, PeerResult
from bench.roofline import Roofline
from bench.suite import ConvShape, GemmShape
from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.errors import ShaderkitError
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry
from runtime.families.q8ta_conv2d import oracle as reference
from runtime.families.q8ta_conv2d.op import (
    GemmGeometry,
    Requant,
    check_requant,
    conv_geometry,
    gemm_geometry,
    gemm_step,
    im2col_step,
    run_conv2d_q8,
)
from runtime.oplib.gemm_formats import (
    matrix_to_nchw,
    pack_weights_q8,
    unpack_matrix_4w4c,
    unpack_output_4c,
    unpack_weights_q8,
)

# NumPy spot checks above these sizes would take longer than the benchmark itself: skipped, and said so.
GEMM_CHECK_MACS = 1 << 32  # float64 BLAS matmul (exact: |sum| <= 8192 * 128 * 128 << 2**53)
CONV_CHECK_MACS = 1 << 28  # the oracle's int64 conv (no BLAS)
IM2COL_CHECK_BYTES = 1 << 25  # Layout.unpack builds an int64 offset per byte
# a few quick runs per GEMM variant to find the fastest for a conv's GEMM, then the full reps for it
SCREEN_REPS = 3
# variance of a uniform int8, which is also the spread of a product of two of them; a K-term
# accumulator of such products spreads over sqrt(K) * _INT8_VAR (used to pick out_scale)
_INT8_VAR = (256**2 - 1) / 12
SENTINEL = 0x7B  # output bytes before a checked run: a variant that writes nothing cannot pass

Log = Callable[[str], None]


def error_status(exc: BaseException) -> str:
    """A row's status for a failure. One variant failing (a driver rejecting a pipeline, a raw Vulkan
    error) must not end an unattended run, so callers catch Exception, record this and go on."""
    kind = "" if isinstance(exc, ShaderkitError) else f"{type(exc).__name__}: "
    return f"error: {kind}{str(exc).splitlines()[0] if str(exc) else ''}"[:300]


@dataclass
class Row:
    """One timed (variant, shape), or why it was not timed."""

    kind: str  # "gemm" | "im2col" | "conv" | "conv-gemm-screen"
    shape: str
    desc: str
    variant: str
    stats: Stats | None = None
    status: str = "ok"  # "ok", "n/a: ...", "error: ..."
    check: str = "not run"
    ops: float | None = None  # int8 ops (2 per multiply-add) of one run
    nbytes: float | None = None  # compulsory bytes (GEMM/conv: inputs + output; im2col: read + written)
    tops: float | None = None
    gbps: float | None = None
    pct_peak: float | None = None  # of the dot-product peak (GEMM, conv) or copy bandwidth (im2col)
    pct_roof: float | None = None  # of min(peak, intensity * bandwidth)
    peer: PeerResult | None = None
    peer_ratio: float | None = None  # peer time / our time: > 1 means we are faster
    pick: str = ""  # conv: "auto", "best-gemm" or "auto = best-gemm"
    steps: list[Stats] = field(default_factory=list)  # conv: im2col and GEMM on their own
    other_peers: list[PeerResult] = field(default_factory=list)  # conv: the int8 peer, where there is one

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("stats", "peer", "steps", "other_peers")}
        out["stats"] = self.stats.to_json() if self.stats else None
        out["peer"] = self.peer.to_json() if self.peer else None
        out["steps"] = [s.to_json() for s in self.steps]
        out["other_peers"] = [p.to_json() for p in self.other_peers]
        return out


@dataclass
class Bench:
    """What every shape benchmark needs."""

    dev: Device
    manifest: Manifest
    roof: Roofline
    peer: Peer
    reps: int
    warmup: int
    log: Log
    keep_variant: Callable[[str], bool] = lambda name: True

    def variants(self, role: str) -> list[VariantEntry]:
        return [self.manifest.variants[n] for n in self.manifest.names(role=role) if self.keep_variant(n)]

    def missing(self, entry: VariantEntry) -> str | None:
        lacks = self.dev.supports(entry.features)
        return f"n/a: device lacks {', '.join(lacks)}" if lacks else None

    def rate(self, row: Row, peer: PeerResult | None = None) -> Row:
        """Fill throughput, roofline percentages and the peer ratio from the row's stats."""
        if row.stats is None:
            return row
        t = row.stats.median
        if row.kind == "im2col":
            row.gbps = (row.nbytes or 0) / t / 1e9
            if self.roof.copy_gbps:
                row.pct_peak = row.pct_roof = 100 * row.gbps / self.roof.copy_gbps
        else:
            row.tops = (row.ops or 0) / t / 1e12
            if self.roof.dot_tops:
                row.pct_peak = 100 * row.tops / self.roof.dot_tops
            ceiling = self.roof.attainable_tops(row.ops or 0, row.nbytes or 0)
            if ceiling:
                row.pct_roof = 100 * row.tops / ceiling
        if peer is not None:
            row.peer = peer
            if peer.stats is not None:
                row.peer_ratio = peer.stats.median / t
        return row


def _mismatch(got: np.ndarray, want: np.ndarray, tol: int, mask: np.ndarray | None = None) -> str:
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    if mask is not None:
        diff = np.where(mask, diff, 0)
    bad = np.argwhere(diff > tol)
    if bad.size == 0:
        return "ok"
    idx = tuple(int(i) for i in bad[0])
    return f"FAILED: {len(bad)} of {diff.size} differ by > {tol}, first at {idx}: {int(got[idx])} vs {int(want[idx])}"


def _rng(name: str) -> np.random.Generator:
    # stable across runs and processes (str hash is salted), so a failing check reproduces
    return np.random.default_rng(zlib.crc32(name.encode()))


def _random_words(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.frombuffer(rng.bytes(4 * count), dtype=np.int32).copy()


# -- GEMM alone ---------------------------------------------------------------------------------------------


def bench_gemm(b: Bench, shape: GemmShape) -> list[Row]:
    """Every GEMM variant on one (M, K, N); inputs are random packed words, uploaded once."""
    geom = GemmGeometry(1, shape.M, shape.K // 4, shape.N)
    rng = _rng(shape.name)
    a_words = _random_words(rng, geom.a_bytes // 4)  # any bytes form a valid 4W4C matrix
    w_words = _random_words(rng, geom.K4 * geom.OCg)
    wsum = w_words.view(np.int8).reshape(geom.K4, geom.OCg, 4).sum(axis=(0, 2), dtype=np.int64).astype(np.int32)
    # outputs spread over the int8 range rather than all saturated: out_scale ~ 3 sigma of acc / 127
    out_scale = 3 * math.sqrt(shape.K) * _INT8_VAR / 127
    rq = check_requant(np.ones(shape.N, np.float32), None, shape.N, x_scale=1.0, x_zp=3, out_scale=out_scale,
                       out_zp=-2, activation="none")
    ops = 2 * shape.macs
    nbytes = a_words.nbytes + w_words.nbytes + geom.out_bytes
    check = shape.macs <= GEMM_CHECK_MACS
    want: np.ndarray | None = None
    peer = b.peer.gemm(shape, b.reps, b.warmup)
    rows = []
    with DeviceInputs(b.dev) as inputs:
        a_buf = inputs.upload(a_words)
        out = inputs.alloc(geom.out_bytes)
        for entry in b.variants("gemm"):
            row = Row("gemm", shape.name, shape.describe(), entry.name, ops=ops, nbytes=nbytes)
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            try:
                if check:
                    out.fill(SENTINEL)
                step = inputs.persist(gemm_step(b.dev, b.manifest, entry, geom, a_buf, w_words, wsum, rq, out))
                row.stats, _ = time_total(b.dev, [step], b.reps, b.warmup)
            except Exception as exc:
                row.status = error_status(exc)
                continue
            if check:
                if want is None:
                    want = _gemm_reference(a_words, w_words, wsum, geom, rq)
                got = unpack_output_4c(out.read(np.int32), 1, shape.M, shape.N)
                row.check = _mismatch(got, want, 1)
            else:
                row.check = f"skipped: {shape.macs:.2g} MACs is too many for a NumPy check"
            b.rate(row, peer)
    return rows


def _gemm_reference(a_words: np.ndarray, w_words: np.ndarray, wsum: np.ndarray, geom: GemmGeometry,
                    rq: Requant) -> np.ndarray:
    a = unpack_matrix_4w4c(a_words, 1, geom.M, 4 * geom.K4)[0].astype(np.float64)
    w = unpack_weights_q8(w_words, 1, 4 * geom.K4, geom.OCg)[0].astype(np.float64)
    acc = (a @ w - rq.x_zp * wsum.astype(np.float64))[None]  # exact integers in float64
    return reference.requantize(acc, rq.x_scale, rq.w_scales, rq.bias, rq.out_scale, rq.out_zp, "none")


# -- im2col alone -------------------------------------------------------------------------------------------


def _layout(manifest: Manifest, entry: VariantEntry) -> Layout:
    """The layout a variant reads: its own, or 4W4C (what conv2d_q8 defaults to) for generic ones."""
    name = entry.axes.get("input_layout", "generic")
    name = "4w4c" if name == "generic" else name
    return Layout.from_dict(name, manifest.layouts[name])


def bench_im2col(b: Bench, shape: ConvShape) -> list[Row]:
    """Every im2col variant on one conv's input; GB/s counts the packed input read once + the matrix written."""
    rng = _rng(shape.name)
    x = rng.integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
    kernel = np.zeros((shape.groups, shape.C_in // shape.groups, shape.K, shape.K), np.int8)  # carries the shape
    geom = conv_geometry(x.shape, kernel, stride=shape.stride, padding=shape.padding, dilation=1, groups=shape.groups)
    gg = gemm_geometry(geom)
    x_zp = 5
    check = gg.a_bytes <= IM2COL_CHECK_BYTES
    want: tuple[np.ndarray, np.ndarray] | None = None
    rows = []
    packed: dict[str, np.ndarray] = {}
    with DeviceInputs(b.dev) as inputs:
        a_buf = inputs.alloc(gg.a_bytes)
        for entry in b.variants("im2col"):
            row = Row("im2col", shape.name, shape.describe(), entry.name)
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            try:
                layout = _layout(b.manifest, entry)
                if layout.name not in packed:
                    packed[layout.name] = layout.pack(x)
                x_words = packed[layout.name]
                row.desc += f", {layout.name} in"
                row.nbytes = x_words.nbytes + gg.a_bytes
                if check:
                    a_buf.fill(SENTINEL)
                step = inputs.persist(im2col_step(b.dev, entry, layout, geom, x_words, x_zp, a_buf))
                row.stats, _ = time_total(b.dev, [step], b.reps, b.warmup)
            except Exception as exc:
                row.status = error_status(exc)
                continue
            if check:
                if want is None:
                    want = reference.im2col(x, shape.K, shape.K, shape.stride, shape.padding, 1, shape.groups, x_zp)
                got = unpack_matrix_4w4c(a_buf.read(np.int32), gg.G, gg.M, 4 * gg.K4)
                row.check = _mismatch(got, want[0], 0, np.broadcast_to(want[1], want[0].shape))
            else:
                row.check = f"skipped: {gg.a_bytes / 2**20:.0f} MiB matrix is too big for a NumPy check"
            b.rate(row)
    return rows


# -- the whole conv -----------------------------------------------------------------------------------------


@dataclass
class _ConvCase:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray
    kwargs: dict[str, Any]


def _conv_case(shape: ConvShape) -> _ConvCase:
    rng = _rng(shape.name)
    x = rng.integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
    weight = rng.integers(-128, 128, size=(shape.C_out, shape.C_in // shape.groups, shape.K, shape.K), dtype=np.int8)
    w_scales = rng.uniform(0.001, 0.02, shape.C_out).astype(np.float32)
    bias = rng.standard_normal(shape.C_out).astype(np.float32)
    x_scale = 0.05
    k = shape.C_in // shape.groups * shape.K * shape.K
    out_scale = 3 * math.sqrt(k) * _INT8_VAR * x_scale * float(np.mean(w_scales)) / 127
    kwargs = {"x_scale": x_scale, "x_zp": 5, "out_scale": out_scale, "out_zp": -3, "stride": shape.stride,
              "padding": shape.padding, "dilation": 1, "groups": shape.groups, "activation": "none"}
    return _ConvCase(x, weight, w_scales, bias, kwargs)


def bench_conv(b: Bench, shape: ConvShape) -> list[Row]:
    """The pair conv2d_q8 picks, and the same im2col with the fastest GEMM variant for this shape."""
    case = _conv_case(shape)
    kw = case.kwargs
    desc = shape.describe()
    ops, nbytes = 2 * shape.macs, case.x.nbytes + case.weight.nbytes + shape.N * shape.C_out * shape.H_out * shape.W_out
    try:
        # the public entry point says which pair it picks (and runs it once)
        auto = run_conv2d_q8(case.x, case.weight, case.w_scales, case.bias, device=b.dev, **kw)
    except Exception as exc:
        return [Row("conv", shape.name, desc, "auto", status=error_status(exc), pick="auto")]
    geom = auto.geometry
    gg = gemm_geometry(geom)
    rq = check_requant(case.w_scales, case.bias, geom.C_out, x_scale=kw["x_scale"], x_zp=kw["x_zp"],
                       out_scale=kw["out_scale"], out_zp=kw["out_zp"], activation="none")
    im2col_entry = b.manifest.variant(auto.im2col_variant)
    layout = Layout.from_dict("4w4c", b.manifest.layouts["4w4c"])  # what run_conv2d_q8 was called with
    x_words = layout.pack(case.x)
    w_words, wsum = pack_weights_q8(case.weight, geom.groups)
    check = shape.macs <= CONV_CHECK_MACS
    want = None
    if check:
        want, _ = reference.conv2d_q8_reference(case.x, case.weight, case.w_scales, case.bias, **kw)

    def output_check(out: Buffer) -> str:
        if want is None:
            return f"skipped: {shape.macs:.2g} MACs is too many for a NumPy check"
        mat = unpack_output_4c(out.read(np.int32), geom.groups, geom.M, geom.OCg)
        return _mismatch(matrix_to_nchw(mat, geom.N, geom.H_out, geom.W_out), want, 1)

    rows: list[Row] = []
    with DeviceInputs(b.dev) as inputs:
        a_buf = inputs.alloc(gg.a_bytes)
        out = inputs.alloc(gg.out_bytes)
        im2col = inputs.persist(im2col_step(b.dev, im2col_entry, layout, geom, x_words, rq.x_zp, a_buf))
        b.dev.run([im2col])  # the GEMM screen below reads this matrix

        def gemm(entry: VariantEntry) -> Any:
            return inputs.persist(gemm_step(b.dev, b.manifest, entry, gg, a_buf, w_words, wsum, rq, out))

        # screen every GEMM variant on this conv's GEMM with a few runs; the fastest one that passes wins
        best: tuple[float, str] | None = None
        for entry in b.variants("gemm"):
            row = Row("conv-gemm-screen", shape.name, desc, entry.name, ops=ops, nbytes=nbytes)
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            try:
                out.fill(SENTINEL)
                row.stats, _ = time_total(b.dev, [gemm(entry)], min(b.reps, SCREEN_REPS), min(b.warmup, 1))
            except Exception as exc:
                row.status = error_status(exc)
                continue
            row.check = output_check(out)
            b.rate(row)
            if not row.check.startswith("FAILED") and (best is None or row.stats.median < best[0]):
                best = (row.stats.median, entry.name)

        peers = b.peer.conv(shape, b.reps, b.warmup)
        pairs = [("auto", auto.gemm_variant)]
        if best is not None and best[1] != auto.gemm_variant:
            pairs.append(("best-gemm", best[1]))
        elif best is not None:
            pairs = [("auto = best-gemm", auto.gemm_variant)]
        for pick, gemm_name in pairs:
            row = Row("conv", shape.name, desc, f"{auto.im2col_variant} + {gemm_name}", ops=ops, nbytes=nbytes,
                      pick=pick)
            rows.append(row)
            try:
                out.fill(SENTINEL)
                row.stats, row.steps = time_total(b.dev, [im2col, gemm(b.manifest.variant(gemm_name))], b.reps,
                                                  b.warmup)
            except Exception as exc:
                row.status = error_status(exc)
                continue
            row.check = output_check(out)
            b.rate(row, peers[0])
            row.other_peers = peers[1:]
    return rows
