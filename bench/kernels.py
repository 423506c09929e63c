"""Benchmarks of our int8 variants per shape: GEMM alone, im2col alone, and the whole conv.

Every timed row carries both timings of bench/measure.py (kernel, stream), its unit's roofline
percentages (bench/roofline.py) and, for GEMM and conv, the peer's like-for-like ratios.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import upstream
from bench.clocks import Spinner
from bench.measure import DeviceInputs, Matched, Stats, adaptive_reps, time_matched
from bench.peer import Peer, PeerSet, PeerTiming
from bench.roofline import Roofline, unit_of
from bench.suite import ConvShape, GemmShape, Pacing
from runtime.core import tuning
from runtime.core.device import Device, Step
from runtime.core.errors import ShaderkitError
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import device_unfit
from runtime.families.q8ta_conv2d import oracle as reference
from runtime.families.q8ta_conv2d.im2col import (
    PATH_NAMES,
    PATH_STAGED,
    PATH_STREAM,
    Im2colPlan,
    matrix_bytes,
    matrix_of,
    plan_call,
)
from runtime.families.q8ta_conv2d.op import (
    TUNING_KEYS,
    GemmGeometry,
    Requant,
    check_requant,
    conv_geometry,
    gemm_geometry,
    gemm_rows,
    gemm_step,
    im2col_step,
    matrix_formats,
    pick_passes,
    run_conv2d_q8,
    shape_class,
)
from runtime.oplib.gemm_formats import (
    MATRIX_FORMATS,
    formats_agree,
    matrix_to_nchw,
    pack_weights_q8,
    unpack_matrix_4w4c,
    unpack_matrix_upstream,
    unpack_output_4c,
    unpack_weights_q8,
)
from runtime.oplib.gemm_q8 import emulated

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
CONV_LAYOUT = "4w4c"  # the layout conv2d_q8 packs x in by default, and the one the bench uses

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
    unit: str = ""  # the roofline unit it is compared with (bench/roofline.py)
    stats: Stats | None = None  # kernel time of one call (our timestamps around each dispatch, summed)
    stream: Stats | None = None  # per-call time in a stream of `calls` back-to-back calls, one submit
    calls: int = 0
    status: str = "ok"  # "ok", "n/a: ...", "error: ...", "skipped: ..."
    check: str = "not run"
    ops: float | None = None  # int8 ops (2 per multiply-add) of one run
    nbytes: float | None = None  # compulsory bytes (GEMM/conv: inputs + output; im2col: read + written)
    tops: float | None = None
    gbps: float | None = None
    pct_peak: float | None = None  # of the unit's peak (copy bandwidth for im2col)
    pct_roof: float | None = None  # of min(unit peak, intensity * bandwidth)
    peer: PeerTiming | None = None  # what the ratios compare with: the fastest peer candidate
    ratio_kernel: float | None = None  # peer kernel time / our kernel time: > 1 means we are faster
    ratio_stream: float | None = None  # peer stream time / our stream time
    pick: str = ""  # conv: "tuned", "heuristic", "best-gemm", or several joined by " = "
    steps: list[Stats] = field(default_factory=list)  # conv: im2col and GEMM on their own
    peer_refs: list[PeerTiming] = field(default_factory=list)  # conv: the int8 peer, where there is one
    tuning: dict[str, Any] = field(default_factory=dict)  # conv: shape classes and the cache's entries

    def to_json(self) -> dict[str, Any]:
        skip = ("stats", "stream", "peer", "steps", "peer_refs")
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["stats"] = self.stats.to_json() if self.stats else None
        out["stream"] = self.stream.to_json() if self.stream else None
        # the peer's samples are in the run's "peers" (once per shape); a row keeps its medians
        out["peer"] = self.peer.to_json(full=False) if self.peer else None
        out["steps"] = [s.to_json() for s in self.steps]
        out["peer_refs"] = [p.to_json(full=False) for p in self.peer_refs]
        return out


@dataclass
class Bench:
    """What every shape benchmark needs, and what the run collects besides rows."""

    dev: Device
    manifest: Manifest
    roof: Roofline
    peer: Peer
    reps: int
    warmup: int
    log: Log
    keep_variant: Callable[[str], bool] = lambda name: True
    pacing: Pacing = field(default_factory=Pacing)
    spinner: Spinner | None = None
    peer_sets: dict[str, tuple[str, str, PeerSet]] = field(default_factory=dict)  # shape -> (kind, desc, set)
    _last_busy: float = 0.0

    def variants(self, role: str) -> list[VariantEntry]:
        """The variants of `role` the bench times: the ones asked for, never the software-emulated
        tensor-core twins (test-only code paths, see runtime/oplib/gemm_q8.emulated)."""
        return [v for v in self.manifest.entries(role=role) if self.keep_variant(v.name) and not emulated(v.axes)]

    def missing(self, entry: VariantEntry) -> str | None:
        lacks = self.dev.supports(entry.features)
        if lacks:
            return f"n/a: device lacks {', '.join(lacks)}"
        unfit = device_unfit(entry, self.dev)
        return f"n/a: device unfit: {unfit}" if unfit else None

    def time(self, steps: Sequence[Step], reps: int | None = None, warmup: int | None = None) -> Matched:
        """Both timings of one call of `steps` (bench/measure.py), after spinning an idle GPU back up."""
        if self.spinner is not None and time.perf_counter() - self._last_busy > self.pacing.idle_s:
            self.spinner.spin(self.pacing.spin_s)
        if reps is None:
            reps = adaptive_reps(self.dev, steps, self.reps, self.pacing.variant_budget_s)
        matched = time_matched(self.dev, steps, reps, self.warmup if warmup is None else warmup)
        self._last_busy = time.perf_counter()
        return matched

    def rate(self, row: Row) -> Row:
        """Throughput, the unit's roofline percentages and the peer ratios from the row's timings."""
        if row.stats is None:
            return row
        t = row.stats.median
        if row.kind == "im2col":
            row.gbps = (row.nbytes or 0) / t / 1e9
            if self.roof.copy_gbps:
                row.pct_peak = row.pct_roof = 100 * row.gbps / self.roof.copy_gbps
        else:
            row.tops = (row.ops or 0) / t / 1e12
            peak = self.roof.peak(row.unit)
            row.pct_peak = 100 * row.tops / peak if peak else None
            ceiling = self.roof.attainable_tops(row.ops or 0, row.nbytes or 0, row.unit)
            row.pct_roof = 100 * row.tops / ceiling if ceiling else None
        if row.peer is not None:
            kernel, stream = row.peer.seconds("kernel"), row.peer.seconds("stream")
            row.ratio_kernel = kernel / t if kernel is not None else None
            row.ratio_stream = stream / row.stream.median if stream is not None and row.stream else None
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


def _fill(row: Row, matched: Matched) -> None:
    row.stats, row.stream, row.calls, row.steps = matched.kernel, matched.stream, matched.calls, matched.steps


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
    peers = b.peer.gemm(shape, b.reps, b.warmup)  # first: it gives its memory back before ours is taken
    b.peer_sets[shape.name] = ("gemm", shape.describe(), peers)
    rows = []
    with DeviceInputs(b.dev) as inputs:
        a_buf = inputs.upload(a_words)
        out = inputs.alloc(geom.out_bytes)
        for entry in b.variants("gemm"):
            row = Row("gemm", shape.name, shape.describe(), entry.name, unit_of(entry), ops=ops, nbytes=nbytes,
                      peer=peers.best)
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            try:
                if check:
                    out.fill(SENTINEL)
                step = inputs.persist(gemm_step(b.dev, b.manifest, entry, geom, a_buf, w_words, wsum, rq, out))
                _fill(row, b.time([step]))
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
            b.rate(row)
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
    name = CONV_LAYOUT if name == "generic" else name
    return Layout.from_dict(name, manifest.layouts[name])


def _im2col_runs(b: Bench, geom: Any) -> list[tuple[VariantEntry, int | None, bool | None]]:
    """(variant, kernel-row parts, stream) to time: each variant as conv2d_q8 runs it (None: the device's
    choice, im2col.plan_call) and, on a GPU, with the other extreme of each choice too (unsplit where the
    device splits, one kernel row per thread where it does not; off the stream path where the device
    takes it, on it where it does not), so their effect is measured in the run."""
    runs: list[tuple[VariantEntry, int | None, bool | None]] = []
    for entry in b.variants("im2col"):
        runs.append((entry, None, None))
        if b.missing(entry) is not None or b.dev.info.device_type == "cpu":
            continue
        layout = _layout(b.manifest, entry)
        auto = plan_call(b.dev, entry, layout, geom)
        other = 1 if auto.kh_parts > 1 else geom.KH
        if plan_call(b.dev, entry, layout, geom, other, False).kh_parts != auto.kh_parts:
            runs.append((entry, other, False))
        streamed = auto.path in (PATH_STREAM, PATH_STAGED)
        if plan_call(b.dev, entry, layout, geom, None, not streamed).path != auto.path:
            runs.append((entry, None, not streamed))
    return runs


def _stream_desc(pl: Im2colPlan) -> str:
    """What a stream-path row's threads do: units per thread, the groups each unit writes, and whether
    each thread keeps one tap."""
    fan = f" of {pl.group_fanout} groups each" if pl.group_fanout > 1 else ""
    taps = f", one tap per thread ({pl.stream_threads} of {pl.workgroup} threads)" if pl.fixed_taps else ""
    return f", {pl.strip * pl.stream_iters} units{fan} per thread{taps}"


def _staged_desc(pl: Im2colPlan) -> str:
    """What a staged-path row's workgroups do: output rows each, and the shared memory their input takes."""
    assert pl.stage is not None
    return f", {pl.stage.rows} output rows per workgroup from {pl.stage.words * 4 / 1024:.1f} KiB of staged input"


def bench_im2col(b: Bench, shape: ConvShape) -> list[Row]:
    """Every im2col variant on one conv's input (each in its matrix format), then upstream's own shaders
    where `.upstream/` holds them (bench/upstream.py); GB/s counts the packed input read once + the matrix
    written. Matrices over IM2COL_CHECK_BYTES skip the NumPy check; upstream's output is compared with our
    upstream-format output byte for byte whatever the size."""
    rng = _rng(shape.name)
    x = rng.integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
    kernel = np.zeros((shape.groups, shape.C_in // shape.groups, shape.K, shape.K), np.int8)  # carries the shape
    geom = conv_geometry(x.shape, kernel, stride=shape.stride, padding=shape.padding, dilation=1, groups=shape.groups)
    x_zp = 5
    wants: dict[str, Any] = {}
    ours: dict[str, np.ndarray] = {}  # our upstream-format matrix (4w4c input), for upstream's rows
    best: tuple[float, str] | None = None  # our fastest 4w4c-specialized variant
    rows = []
    packed: dict[str, np.ndarray] = {}

    def expected(fmt: str) -> Any:
        if fmt not in wants:
            args = (x, shape.K, shape.K, shape.stride, shape.padding, 1, shape.groups, x_zp)
            wants[fmt] = reference.im2col_upstream(*args) if fmt == "upstream" else reference.im2col(*args)
        return wants[fmt]

    with DeviceInputs(b.dev) as inputs:
        a_buf = inputs.alloc(max(matrix_bytes(geom, fmt) for fmt in MATRIX_FORMATS))
        for entry, parts, stream in _im2col_runs(b, geom):
            fmt = matrix_of(entry)
            forced = ([] if parts is None else [f"kh_parts={parts}"]) + ([] if stream is None else [f"stream={stream}"])
            name = f"{entry.name} ({', '.join(forced)})" if forced else entry.name
            row = Row("im2col", shape.name, shape.describe(), name, "copy")
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            nbytes = matrix_bytes(geom, fmt)
            check = nbytes <= IM2COL_CHECK_BYTES
            try:
                layout = _layout(b.manifest, entry)
                if layout.name not in packed:
                    packed[layout.name] = layout.pack(x)
                x_words = packed[layout.name]
                pl = plan_call(b.dev, entry, layout, geom, parts, stream)
                row.desc += (f", {layout.name} in, {fmt} matrix ({PATH_NAMES[pl.path]} path"
                             f"{f', kernel rows in {pl.kh_parts} parts' if pl.kh_parts > 1 else ''}"
                             f"{_stream_desc(pl) if pl.path == PATH_STREAM else ''}"
                             f"{_staged_desc(pl) if pl.path == PATH_STAGED else ''})")
                row.nbytes = x_words.nbytes + nbytes
                a_buf.fill(SENTINEL)
                step = inputs.persist(im2col_step(b.dev, entry, layout, geom, x_words, x_zp, a_buf, parts, stream))
                _fill(row, b.time([step]))
            except Exception as exc:
                row.status = error_status(exc)
                continue
            words = a_buf.read(np.int32)[: nbytes // 4] if check or fmt == "upstream" else None
            if fmt == "upstream" and layout.name == CONV_LAYOUT and words is not None:
                ours.setdefault("words", words)
            as_op_runs = entry.axes.get("input_layout") == CONV_LAYOUT and parts is None and stream is None
            if as_op_runs and row.stats and (best is None or row.stats.median < best[0]):
                best = (row.stats.median, entry.name)
            if not check or words is None:
                row.check = f"skipped: {nbytes / 2**20:.0f} MiB matrix is too big for a NumPy check"
            elif fmt == "upstream":
                row.check = _mismatch(unpack_matrix_upstream(words, geom), expected("upstream"), 0)
            else:
                want, mask = expected("native")
                got = unpack_matrix_4w4c(words, geom.groups, geom.M, geom.Kp)
                row.check = _mismatch(got, want, 0, np.broadcast_to(mask, want.shape))
            b.rate(row)
        rows += _upstream_rows(b, shape, geom, x, x_zp, a_buf, inputs, ours.get("words"), best)
    return rows


def _upstream_rows(b: Bench, shape: ConvShape, geom: Any, x: np.ndarray, x_zp: int, a_buf: Any, inputs: DeviceInputs,
                   ours: np.ndarray | None, best: tuple[float, str] | None) -> list[Row]:
    """Upstream's im2col shaders on the same input bytes, where `.upstream/` has them: checked against our
    upstream-format matrix, and with ours/upstream (> 1: ours is faster) in their description."""
    rows: list[Row] = []
    layout = Layout.from_dict(CONV_LAYOUT, b.manifest.layouts[CONV_LAYOUT])
    try:
        found = upstream.find()
    except Exception as exc:  # a broken hand expansion must not end the run
        return [Row("im2col", shape.name, shape.describe(), "upstream", "copy", status=error_status(exc))]
    for label, shader in found.items():
        if not b.keep_variant(label):
            continue
        row = Row("im2col", shape.name, shape.describe() + f", {CONV_LAYOUT} in, upstream matrix", label, "copy")
        rows.append(row)
        if shader is None:
            row.status = upstream.NOT_PRESENT
            continue
        if (why := upstream.applies(label, geom, CONV_LAYOUT)) is not None:
            row.status = f"n/a: {why}"
            continue
        nbytes = matrix_bytes(geom, "upstream")
        try:
            x_words = layout.pack(x)
            row.nbytes = x_words.nbytes + nbytes
            a_buf.fill(SENTINEL)
            step = inputs.persist(upstream.im2col_step(b.dev, shader, layout, layout, geom, x_words, x_zp, a_buf))
            _fill(row, b.time([step]))
        except Exception as exc:
            row.status = error_status(exc)
            continue
        got = a_buf.read(np.int32)[: nbytes // 4]
        if ours is not None:
            row.check = "ok" if np.array_equal(got, ours) else "FAILED: differs from our upstream-format matrix"
        else:
            row.check = _mismatch(unpack_matrix_upstream(got, geom), reference.im2col_upstream(
                x, shape.K, shape.K, shape.stride, shape.padding, 1, shape.groups, x_zp), 0)
        if best is not None and row.stats is not None:
            row.desc += f"; ours/upstream {row.stats.median / best[0]:.2f}x ({best[1]})"
        b.rate(row)
    return rows


# -- the whole conv -----------------------------------------------------------------------------------------


@dataclass
class ConvCase:
    x: np.ndarray
    weight: np.ndarray
    w_scales: np.ndarray
    bias: np.ndarray
    kwargs: dict[str, Any]


def conv_case(shape: ConvShape) -> ConvCase:
    """Random int8 input and weights of one conv shape, with scales that keep outputs off saturation."""
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
    return ConvCase(x, weight, w_scales, bias, kwargs)


class ConvRig:
    """One conv shape on the device, ready to time any (im2col, GEMM) variant pair: inputs uploaded once
    (into `inputs`), the NumPy result computed once for small shapes, every output checked against it.
    Each im2col matrix format (runtime/oplib/gemm_formats.py) has its own matrix buffer and GEMM weights,
    so a pass always meets a partner of its format. Used by the conv benchmark and by `python -m bench tune`."""

    def __init__(self, dev: Device, manifest: Manifest, shape: ConvShape, inputs: DeviceInputs) -> None:
        self.dev, self.manifest, self.shape, self.inputs = dev, manifest, shape, inputs
        self.case = case = conv_case(shape)
        kw = case.kwargs
        self.geom = conv_geometry(case.x.shape, case.weight, stride=shape.stride, padding=shape.padding,
                                  dilation=1, groups=shape.groups)
        self.gg = gemm_geometry(self.geom)
        self.rq = check_requant(case.w_scales, case.bias, self.geom.C_out, x_scale=kw["x_scale"], x_zp=kw["x_zp"],
                                out_scale=kw["out_scale"], out_zp=kw["out_zp"], activation="none")
        self.layout = Layout.from_dict(CONV_LAYOUT, manifest.layouts[CONV_LAYOUT])
        self.x_words = self.layout.pack(case.x)
        self.w_words, self.wsum = pack_weights_q8(case.weight, self.geom.groups)
        self.ops = 2 * shape.macs
        self.nbytes = case.x.nbytes + case.weight.nbytes + shape.N * shape.C_out * shape.H_out * shape.W_out
        self.want: np.ndarray | None = None
        if shape.macs <= CONV_CHECK_MACS:
            self.want, _ = reference.conv2d_q8_reference(case.x, case.weight, case.w_scales, case.bias, **kw)
        self.a_buf = inputs.alloc(self.gg.a_bytes)  # the native matrix (and both, where formats agree)
        self.out = inputs.alloc(self.gg.out_bytes)
        # the formats conv2d_q8 would use, preferred first (its automatic choice first)
        self.formats = matrix_formats(manifest, self.geom, None, {})
        self._a_bufs: dict[str, Any] = {"native": self.a_buf}
        self._weights: dict[str, tuple[np.ndarray, np.ndarray]] = {"native": (self.w_words, self.wsum)}

    def _format(self, entry: VariantEntry) -> str:
        """The matrix buffer a pass uses: its format's, or the native one where the formats are the same bytes."""
        return "native" if formats_agree(self.geom) else matrix_of(entry)

    def _a(self, fmt: str) -> Any:
        if fmt not in self._a_bufs:
            self._a_bufs[fmt] = self.inputs.alloc(matrix_bytes(self.geom, fmt))
        return self._a_bufs[fmt]

    def serves(self, entry: VariantEntry) -> bool:
        """Whether conv2d_q8, choosing the format itself, may run this pass here (what the tuner times)."""
        return matrix_of(entry) in (self.formats if formats_agree(self.geom) else self.formats[:1])

    def classes(self) -> dict[str, str]:
        """The tuning-cache shape class of each pass (runtime.families.q8ta_conv2d.op.shape_class)."""
        g = self.geom
        bound = "" if formats_agree(g) else self.formats[0]
        k4 = g.K4 if bound != "upstream" else gemm_geometry(g, bound).K4
        return {"im2col": shape_class("im2col", K4=k4, layout=CONV_LAYOUT, matrix=bound),
                "gemm": shape_class("gemm", K4=k4, M=g.M, OCg=g.OCg, scale_dtype="float32", matrix=bound)}

    def partner(self, entry: VariantEntry, other: VariantEntry) -> VariantEntry:
        """`other` (a variant of the other pass) where it shares `entry`'s matrix format, else the heuristic's
        variant of that pass in `entry`'s format."""
        if formats_agree(self.geom) or matrix_of(entry) == matrix_of(other):
            return other
        passes = pick_passes(self.manifest, self.dev, self.geom, CONV_LAYOUT, "float32", matrix=matrix_of(entry))
        return passes.gemm if other.role == "gemm" else passes.im2col

    def fill_matrices(self, im2col: VariantEntry) -> None:
        """Every format's matrix, so that any GEMM variant finds its own: `im2col` and its heuristic peers."""
        steps = [self.im2col(im2col)]
        if not formats_agree(self.geom):
            steps += [self.im2col(self.partner(self._probe_gemm(fmt), im2col)) for fmt in MATRIX_FORMATS
                      if fmt != matrix_of(im2col)]
        self.dev.run(steps)

    def _probe_gemm(self, fmt: str) -> VariantEntry:
        return pick_passes(self.manifest, self.dev, self.geom, CONV_LAYOUT, "float32", matrix=fmt).gemm

    def im2col(self, entry: VariantEntry) -> Step:
        return self.inputs.persist(im2col_step(self.dev, entry, self.layout, self.geom, self.x_words, self.rq.x_zp,
                                               self._a(self._format(entry))))

    def gemm(self, entry: VariantEntry) -> Step:
        fmt, reads = self._format(entry), matrix_of(entry)
        if reads not in self._weights:
            self._weights[reads] = pack_weights_q8(self.case.weight, self.geom.groups, reads)
        w_words, wsum = self._weights[reads]
        if fmt == "native":
            geom, rows = self.gg, None
        else:
            geom, rows = gemm_geometry(self.geom, fmt), gemm_rows(self.geom, fmt)
        return self.inputs.persist(gemm_step(self.dev, self.manifest, entry, geom, self._a(fmt), w_words, wsum, self.rq,
                                             self.out, rows=rows))

    def poison(self) -> None:
        self.out.fill(SENTINEL)

    def check(self) -> str:
        """The output buffer against NumPy (within +-1 after requantization)."""
        if self.want is None:
            return f"skipped: {self.shape.macs:.2g} MACs is too many for a NumPy check"
        g = self.geom
        mat = unpack_output_4c(self.out.read(np.int32), g.groups, g.M, g.OCg)
        return _mismatch(matrix_to_nchw(mat, g.N, g.H_out, g.W_out), self.want, 1)


def picks(dev: Device, shape: ConvShape, which: Sequence[str] = ("tuned", "heuristic")) -> dict[str, tuple[str, str]]:
    """(im2col, GEMM) variant pairs conv2d_q8 runs for this shape: "tuned" with the tuning cache,
    "heuristic" without it (each runs the public entry point once)."""
    case = conv_case(shape)
    out = {}
    for name in which:
        with tuning.disabled() if name == "heuristic" else contextlib.nullcontext():
            run = run_conv2d_q8(case.x, case.weight, case.w_scales, case.bias, device=dev, **case.kwargs)
        out[name] = (run.im2col_variant, run.gemm_variant)
    return out


def bench_conv(b: Bench, shape: ConvShape) -> list[Row]:
    """The pairs conv2d_q8 picks with and without the tuning cache, and its heuristic im2col with the GEMM
    variant that was fastest on this shape in a short screen of every one."""
    desc = shape.describe()
    try:
        chosen = picks(b.dev, shape)
    except Exception as exc:
        return [Row("conv", shape.name, desc, "tuned", status=error_status(exc), pick="tuned")]
    rows: list[Row] = []
    with DeviceInputs(b.dev) as inputs:
        rig = ConvRig(b.dev, b.manifest, shape, inputs)
        classes = rig.classes()
        entries = {role: tuning.lookup(b.dev, b.manifest, TUNING_KEYS[role], cls) for role, cls in classes.items()}
        rig.fill_matrices(b.manifest.variant(chosen["heuristic"][0]))  # what the GEMM screen below reads

        # screen every GEMM variant on this conv's GEMM with a few runs; the fastest one that passes wins
        best: tuple[float, str] | None = None
        for entry in b.variants("gemm"):
            row = Row("conv-gemm-screen", shape.name, desc, entry.name, unit_of(entry), ops=rig.ops,
                      nbytes=rig.nbytes)
            rows.append(row)
            if (reason := b.missing(entry)) is not None:
                row.status = reason
                continue
            try:
                rig.poison()
                _fill(row, b.time([rig.gemm(entry)], reps=min(b.reps, SCREEN_REPS), warmup=min(b.warmup, 1)))
            except Exception as exc:
                row.status = error_status(exc)
                continue
            row.check = rig.check()
            b.rate(row)
            if row.stats and not row.check.startswith("FAILED") and (best is None or row.stats.median < best[0]):
                best = (row.stats.median, entry.name)

        peers = b.peer.conv(shape, b.reps, b.warmup)
        b.peer_sets[shape.name] = ("conv", desc, peers)
        pairs: dict[tuple[str, str], list[str]] = {}
        for label, pair in chosen.items():
            pairs.setdefault(pair, []).append(label)
        if best is not None:
            heuristic_im2col = rig.partner(b.manifest.variant(best[1]), b.manifest.variant(chosen["heuristic"][0]))
            pairs.setdefault((heuristic_im2col.name, best[1]), []).append("best-gemm")
        for (im2col_name, gemm_name), labels in pairs.items():
            gemm_entry = b.manifest.variant(gemm_name)
            row = Row("conv", shape.name, desc, f"{im2col_name} + {gemm_name}", unit_of(gemm_entry), ops=rig.ops,
                      nbytes=rig.nbytes, pick=" = ".join(labels), peer=peers.best, peer_refs=peers.references,
                      tuning={"classes": classes, "entries": entries})
            rows.append(row)
            try:
                rig.poison()
                _fill(row, b.time([rig.im2col(b.manifest.variant(im2col_name)), rig.gemm(gemm_entry)]))
            except Exception as exc:
                row.status = error_status(exc)
                continue
            row.check = rig.check()
            b.rate(row)
    return rows


def rates(rows: Sequence[Row]) -> list[tuple[str, str, float]]:
    """(unit, variant, rate) of every timed row whose check did not fail, for roofline.raise_to_kernels."""
    out = []
    for r in rows:
        if r.stats is None or r.check.startswith("FAILED"):
            continue
        value = r.gbps if r.kind == "im2col" else r.tops
        if value is not None and r.unit:
            out.append((r.unit, r.variant, value))
    return out

