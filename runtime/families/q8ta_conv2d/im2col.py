"""The int8 im2col pass (variants.yaml q8ta_im2col; templates/include/im2col_q8.glsl.j2) on the host:
which of the shader's paths serves a call, its thread units, push constants and dispatch.

The shader writes the im2col matrix in the variant's `matrix` format (runtime/oplib/gemm_formats.py):
"native" (G, M, Kp), taps padded to 4 channels each, or "upstream" (N, H_out, Wp, K), upstream's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import VariantEntry
from runtime.oplib.conv import ConvGeometry, conv_push, metadata, workgroups
from runtime.oplib.gemm_formats import MATRIX_FORMATS, upstream_group_k

# the shader's paths (include/im2col_q8.glsl.j2 says what each needs)
PATH_WINDOW, PATH_WORDS, PATH_BYTES, PATH_WINDOW_BYTES, PATH_STREAM, PATH_STAGED = 0, 1, 2, 3, 4, 5
PATH_NAMES = {PATH_WINDOW: "window", PATH_WORDS: "words", PATH_BYTES: "bytes", PATH_WINDOW_BYTES: "window-bytes",
              PATH_STREAM: "stream", PATH_STAGED: "staged"}
# The window paths are specialized (spec constants) on KW and stride_w, the window-bytes path on KH and
# Cg too: each distinct value is a pipeline to compile (~30-500 ms on lavapipe). So they take the sizes
# networks use; others go to the word or byte path, which one pipeline serves whatever the sizes.
WINDOW_KW = frozenset({1, 2, 3, 4, 5, 7})
WINDOW_STRIDES = frozenset({1, 2})
# the window-bytes path keeps the windows of up to 2 words of a group's channels and unrolls its whole
# reduction: depthwise (1) and RGB-like (3) channel counts, square kernels
WINDOW_BYTES_CG = frozenset({1, 2, 3})
# The paths that may split the kernel rows over threads (the byte paths carry a byte accumulator
# across kernel rows, so they walk them all)
SPLIT_PATHS = frozenset({PATH_WINDOW, PATH_WORDS})
# On a GPU, a dispatch of fewer threads than this leaves most of the device idle, and the kernel row
# loop is what each thread waits on: split the kernel rows until a dispatch reaches it (an H200 keeps
# ~270 k threads resident; small layers such as 3x3 over 512 channels at 16x16 start ~8 k). A CPU
# device has a few cores and gains nothing from more, smaller threads.
GPU_MIN_THREADS = 1 << 17
# The stream path's units per thread: enough threads to fill the device first (GPU_MIN_THREADS, or
# CPU_MIN_THREADS: 16 workgroups of 64 keep a CPU's cores busy), then up to STREAM_MAX_ITERS units
# each, over which a thread's one-off index divisions are spread
CPU_MIN_THREADS = 1 << 10
STREAM_MAX_ITERS = 32
# The stream path keeps each thread on one tap and channel word (STREAM_FIXED) where a place has more
# than STREAM_FIXED_MIN_BLOCKS blocks (K4g) and a workgroup holds whole places with at most
# STREAM_FIXED_MAX_IDLE of its threads left out: its loop then carries only the place's digits, not the
# tap's. On an H200 (bench/results/2026-12-03_nvidia-h200/experiments/im2col_fixed_taps, A/B/A in one
# run): the RGB 7x7/2 stem at batch 16 (49 blocks a place, 245 of 256 threads) 1.07-1.11x faster, and
# 1.00x at one 256-thread variant; depthwise 3x3 (9 blocks a place, 63 of 64 or 252 of 256 threads)
# 0.90-0.95x with a row block per thread, 0.97-1.03x with 4, so places that fit a warp keep carrying.
STREAM_FIXED_MIN_BLOCKS = 32
STREAM_FIXED_MAX_IDLE = 1 / 8
# The staged path: where the stream path would keep taps fixed on a native matrix (one group a unit), a
# workgroup stages the input rows of a few output rows in shared memory (at most STAGE_MAX_BYTES) and
# writes their blocks from there. Rows per workgroup: enough for about GPU_MIN_THREADS threads in all.
# On an H200 (experiments/im2col_fixed_taps, runs 4-5): the RGB 7x7/2 stem at batch 16 went from 42.5 %
# to 51.7 % of copy with 4W4C input (1.22x over the fixed-tap stream loop, same run) and from 34.5 % to
# 49.4 % with generic input (1.43x); the rule's 4 rows per workgroup beat 1, 2, 8 and 10 on all four
# 256-thread variants; the stem at batch 1 tied (launch-sized).
STAGED = True
STAGE_MAX_BYTES = 24 << 10
MAX_WORKGROUPS_X = 65535  # the least maxComputeWorkGroupCount[0] Vulkan guarantees


def matrix_of(entry: VariantEntry | Mapping[str, Any]) -> str:
    """The im2col matrix format a variant writes (im2col) or reads (GEMM); "native" when it has no axis."""
    axes = entry.axes if isinstance(entry, VariantEntry) else entry
    value = str(axes.get("matrix", "native"))
    if value not in MATRIX_FORMATS:
        raise ValueError(f"matrix axis value {value!r} is not one of {MATRIX_FORMATS}")
    return value


def k4_per_group(geom: ConvGeometry, matrix: str) -> int:
    """Blocks of 4 k per group: taps x ceil(Cg/4) native, ceil(taps x Cg / 4) upstream."""
    return geom.K4 if matrix == "native" else upstream_group_k(geom) // 4


def matrix_bytes(geom: ConvGeometry, matrix: str) -> int:
    """Bytes of the whole im2col matrix of this conv in `matrix` format."""
    if matrix == "native":
        return geom.groups * geom.M4 * geom.K4 * 16
    return geom.N * geom.H_out * -(-geom.W_out // 4) * geom.groups * k4_per_group(geom, matrix) * 16


def _channel_words(layout: Layout) -> bool:
    """Whether the layout packs 4 channels per int32 (what the word, window and stream paths read)."""
    return layout.packed_dim == "C" and layout.block == 4


def _rows_flattened(geom: ConvGeometry, matrix: str) -> bool:
    """Whether the matrix's image rows do not start on row blocks (native, W_out % 4 != 0): its rows
    are then flattened, row block mb = m / 4."""
    return matrix == "native" and geom.W_out % 4 != 0


def path_for(layout: Layout, geom: ConvGeometry, matrix: str) -> int:
    """The fastest shader path that can serve this call (all of it uniform over the dispatch)."""
    c_words = _channel_words(layout)
    windows = (c_words and layout.outer_dim == "W" and layout.outer_block == 4
               and not _rows_flattened(geom, matrix)
               and geom.dilation[1] == 1 and geom.stride[1] in WINDOW_STRIDES and geom.KW in WINDOW_KW)
    if matrix == "upstream" and geom.Cg % 4 != 0:  # bytes in the format's own reduction order
        small = geom.Cg in WINDOW_BYTES_CG and geom.KH == geom.KW
        return PATH_WINDOW_BYTES if windows and small else PATH_BYTES
    if not c_words:
        return PATH_BYTES
    return PATH_WINDOW if windows else PATH_WORDS


def stream_fanout(geom: ConvGeometry, matrix: str) -> int:
    """Groups whose stream blocks one thread writes from the same loads: native groups of 1 or 2
    channels share an input channel word (4 / Cg of them), so each load serves 4 / Cg groups' blocks
    instead of one. The upstream format never streams such groups (stream_fits)."""
    return 4 // geom.Cg if matrix == "native" and geom.Cg in (1, 2) and geom.groups > 1 else 1


def stream_fixed_taps(k4_group: int, workgroup: int) -> bool:
    """Whether the stream path keeps each thread on one tap: places of more than STREAM_FIXED_MIN_BLOCKS
    blocks (k4_group), whole ones in a workgroup with at most STREAM_FIXED_MAX_IDLE of its threads left out."""
    return (STREAM_FIXED_MIN_BLOCKS < k4_group <= workgroup
            and workgroup % k4_group <= STREAM_FIXED_MAX_IDLE * workgroup)


def stream_fits(layout: Layout, geom: ConvGeometry, matrix: str) -> bool:
    """Whether the stream path can write this call's matrix: 4 channels per input word, image rows on
    row-block boundaries (not flattened native rows) and, upstream, whole channel words per group."""
    whole_words = matrix == "native" or geom.Cg % 4 == 0
    return _channel_words(layout) and not _rows_flattened(geom, matrix) and whole_words


@dataclass(frozen=True)
class StagePlan:
    """The staged path's workgroups: `rows` output image rows each, whose input rows (`width` columns of
    channel words each) take `words` ints of shared memory; `workgroups` of them in all."""

    rows: int
    width: int
    words: int
    workgroups: int


def stage_plan(geom: ConvGeometry, workgroup: int, min_threads: int,
               max_bytes: int = STAGE_MAX_BYTES) -> StagePlan | None:
    """Output rows per staged workgroup: enough workgroups for about `min_threads` threads, as few
    rows as that takes, within `max_bytes` of shared memory and MAX_WORKGROUPS_X workgroups; None
    where one row's inputs do not fit."""
    (SH, SW), (DH, DW) = geom.stride, geom.dilation
    width = (4 * -(-geom.W_out // 4) - 1) * SW + (geom.KW - 1) * DW + 1

    def words(rows: int) -> int:
        return ((rows - 1) * SH + (geom.KH - 1) * DH + 1) * width * geom.Cg4

    def count(rows: int) -> int:
        return geom.groups * geom.N * -(-geom.H_out // rows)

    # the most rows whose input rows fit (below 1 where one row's do not)
    fit = min(geom.H_out, (max_bytes // 4 // (width * geom.Cg4) - (geom.KH - 1) * DH - 1) // SH + 1)
    if fit < 1:
        return None
    rows = min(fit, max(1, -(-count(1) // max(1, min_threads // workgroup))))
    while count(rows) > MAX_WORKGROUPS_X and rows < fit:
        rows += 1
    return StagePlan(rows, width, words(rows), count(rows)) if count(rows) <= MAX_WORKGROUPS_X else None


@dataclass(frozen=True)
class Im2colPlan:
    """One im2col dispatch: the path, the thread units and what the push constants carry."""

    matrix: str
    path: int
    strip: int
    channel_words: int  # threads per (group, image row, strip)
    row_blocks: int  # per image row (flattened native rows: all of them)
    image_rows: int
    k4_group: int
    row_stride: int  # blocks between row blocks
    group_stride: int  # blocks between groups
    flat_rows: int  # M when native rows are flattened, else 0
    groups: int
    kh_rows: int  # kernel rows per thread; the kernel height where a thread walks them all
    kernel_h: int
    workgroup: int  # threads per workgroup
    stream_iters: int  # steps of `strip` units per thread on the stream path (1 elsewhere)
    group_fanout: int = 1  # stream path: groups whose blocks one unit writes (stream_fanout)
    fixed_taps: bool = False  # stream path: each thread keeps one tap (stream_fixed_taps)
    stage: StagePlan | None = None  # staged path: its workgroups' rows

    @property
    def strips(self) -> int:
        """Strips per image row."""
        return -(-self.row_blocks // self.strip)

    @property
    def kh_parts(self) -> int:
        """Parts the kernel rows are split into (threads per (group, image row, strip, channel word))."""
        return -(-self.kernel_h // self.kh_rows)

    @property
    def group_blocks(self) -> int:
        """16-byte blocks of one group's part of the matrix."""
        return self.image_rows * self.row_blocks * self.k4_group

    @property
    def blocks(self) -> int:
        """16-byte blocks of the whole matrix."""
        return self.groups * self.group_blocks

    @property
    def units(self) -> int:
        """The stream path's units: blocks, or where `group_fanout` groups share their loads, places of
        those groups (a unit per block of the first group of each)."""
        return -(-self.groups // self.group_fanout) * self.group_blocks

    @property
    def stream_threads(self) -> int:
        """Threads of a workgroup that take part in the stream path: all, or with `fixed_taps` the most
        that hold whole places of k4_group blocks."""
        return self.workgroup // self.k4_group * self.k4_group if self.fixed_taps else self.workgroup

    @property
    def threads(self) -> int:
        if self.path == PATH_STAGED and self.stage is not None:
            return self.stage.workgroups * self.workgroup
        if self.path == PATH_STREAM:
            per_workgroup = self.stream_threads * self.strip * self.stream_iters
            return workgroups(self.units, per_workgroup) * self.workgroup
        return self.channel_words * self.kh_parts * self.strips * self.image_rows * self.groups


def plan(entry: VariantEntry, layout: Layout, geom: ConvGeometry, kh_parts: int = 1,
         stream: bool = False, min_threads: int = GPU_MIN_THREADS,
         shared_bytes: int = STAGE_MAX_BYTES) -> Im2colPlan:
    """How `entry` covers this conv's matrix: on the stream path where `stream` asks for it and it fits
    (stream_fits), with as many blocks per thread as keep `min_threads` threads (at most
    STREAM_MAX_ITERS), or on the staged path where that fits in `shared_bytes` of shared memory
    (stage_plan); else on path_for's, its kernel rows split into (at most) `kh_parts` parts where
    that path allows (1 elsewhere; more than KH means KH)."""
    matrix = matrix_of(entry)
    path = PATH_STREAM if stream and stream_fits(layout, geom, matrix) else path_for(layout, geom, matrix)
    k4g = k4_per_group(geom, matrix)
    flat = _rows_flattened(geom, matrix)
    row_blocks = geom.M4 if flat else -(-geom.W_out // 4)
    image_rows = 1 if flat else geom.N * geom.H_out
    if matrix == "native":
        row_stride, group_stride = k4g, geom.M4 * k4g
    else:
        row_stride, group_stride = geom.groups * k4g, k4g
    work = entry.axes.get("work", {})
    strip = int(work.get("strip", 1)) if isinstance(work, Mapping) else 1
    channel_words = 1 if path in (PATH_BYTES, PATH_WINDOW_BYTES) else geom.Cg4
    parts = min(max(1, kh_parts), geom.KH) if path in SPLIT_PATHS else 1
    pl = Im2colPlan(matrix, path, strip, channel_words, row_blocks, image_rows, k4g, row_stride, group_stride,
                    geom.M if flat else 0, geom.groups, -(-geom.KH // parts), geom.KH, entry.local_size[0], 1)
    if path != PATH_STREAM:
        return pl
    pl = replace(pl, group_fanout=stream_fanout(geom, matrix),
                 fixed_taps=stream_fixed_taps(k4g, entry.local_size[0]))
    if STAGED and matrix == "native" and pl.group_fanout == 1 and pl.fixed_taps:
        stage = stage_plan(geom, entry.local_size[0], min_threads, shared_bytes)
        if stage is not None:
            return replace(pl, path=PATH_STAGED, stage=stage)
    iters = min(STREAM_MAX_ITERS, max(1, pl.units // (min_threads * strip)))
    return replace(pl, stream_iters=iters)


def auto_stream(dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry) -> bool:
    """Whether a call takes the stream path by default (where it fits): on a GPU, for groups of one
    channel word. There the unit paths' store instructions write 16-byte runs, one per thread, and the
    stream path was 1.06-2.05x the speed of the path it replaces, variant by variant, on an H200
    (depthwise 144 x 112 x 112 and the RGB 7x7/2 stem at batch 16); with 16 channel words (64
    channels) they write 256-byte runs and the stream path was 0.58-0.77x, with 128 (c512) 0.76-0.81x
    (bench/results/2026-12-03_nvidia-h200/bench_im2col.md, one run). A CPU device: never
    (on lavapipe it was no faster on the same kinds of conv, and up to 2x slower on the stem)."""
    if dev.info.device_type == "cpu":
        return False
    return geom.Cg4 == 1


def auto_kh_parts(dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry) -> int:
    """The kernel-row split a call gets by default: none on a CPU device. On a GPU (measured on an H200,
    bench/results/2026-12-03_nvidia-h200/im2col_kh_split/):

    - the fewest parts that bring the dispatch to GPU_MIN_THREADS threads (3x3 layers of 256-896
      channels and a 5x5/2 one: 1.04-1.65x faster; the RGB 7x7/2 stem at batch 16: 0.94x);
    - a row per part for grouped convs whose groups are one channel word (depthwise): a thread's stores
      of a row block are one run of KH*KW blocks, far from its neighbours', and a row per part made the
      144-group 112x112 im2col 2.0-3.1x faster although the dispatch already filled the device.

    At most KH. Splits inside a kernel row were slower than a row per thread on every shape tried
    (experiments/im2col_tap_split/), so the unit is a row."""
    if dev.info.device_type == "cpu":
        return 1
    whole = plan(entry, layout, geom)
    if whole.channel_words == 1 and geom.groups > 1:
        return geom.KH
    return min(geom.KH, -(-GPU_MIN_THREADS // max(1, whole.threads)))


def spec_for(entry: VariantEntry, pl: Im2colPlan, layout: Layout, geom: ConvGeometry) -> dict[str, int]:
    """The specialization constants of the pipeline a plan runs: its path, the layout (generic
    variants), and the sizes a window path unrolls over. Each distinct dict is one pipeline."""
    path = pl.path
    spec: dict[str, int] = {"PATH": path}
    if entry.spec_constant("LAYOUT_HASH"):
        spec["LAYOUT_HASH"] = layout.hashed_i32()
    if path in (PATH_WINDOW, PATH_WINDOW_BYTES):
        spec["KW_SPEC"] = geom.KW
        spec["SW_SPEC"] = geom.stride[1]
    if path == PATH_STREAM:
        spec["GPW_SPEC"] = pl.group_fanout
        spec["STREAM_FIXED"] = int(pl.fixed_taps)
    if path == PATH_STAGED and pl.stage is not None:
        spec["STAGE_WORDS"] = pl.stage.words
    if path == PATH_WINDOW_BYTES:
        spec["KH_SPEC"] = geom.KH
        spec["CG_SPEC"] = geom.Cg
    return spec


def plan_call(dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, kh_parts: int | None = None,
              stream: bool | None = None) -> Im2colPlan:
    """The plan a call runs: `kh_parts` and `stream` as given, the device's choice where None."""
    parts = auto_kh_parts(dev, entry, layout, geom) if kh_parts is None else kh_parts
    use_stream = auto_stream(dev, entry, layout, geom) if stream is None else stream
    cpu = dev.info.device_type == "cpu"
    shared = min(STAGE_MAX_BYTES, int(dev.info.limits["maxComputeSharedMemorySize"]))
    return plan(entry, layout, geom, parts, use_stream, CPU_MIN_THREADS if cpu else GPU_MIN_THREADS, shared)


def im2col_step(dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, x_data: Buffer | np.ndarray,
                x_zp: int, out: Buffer, kh_parts: int | None = None, stream: bool | None = None) -> Step:
    """The int8 im2col dispatch: x laid out in `layout` -> the entry's matrix format in `out`. The matrix
    does not depend on `kh_parts` or `stream` (None: the device's choice, plan_call), only the threads do."""
    pl = plan_call(dev, entry, layout, geom, kh_parts, stream)
    spec = spec_for(entry, pl, layout, geom)
    buffers: dict[str | int, Any] = {0: out, 1: x_data}
    if any(b.binding == 2 for b in entry.bindings):
        buffers[2] = metadata(layout, (geom.N, geom.C_in, geom.H, geom.W))
    push = {
        **conv_push(geom),
        "units": (pl.channel_words, pl.strips, pl.image_rows, pl.threads),
        "matrix": (pl.row_blocks, pl.k4_group, pl.row_stride, pl.group_stride),
        "flat_rows": pl.flat_rows,
        "x_zp": x_zp,
        "kh_parts": pl.kh_parts,
        "kh_rows": pl.kh_rows,
        "stream_iters": pl.stream_iters,
        "stage_rows": pl.stage.rows if pl.stage else 0,
        "stage_width": pl.stage.width if pl.stage else 0,
    }
    return Step(dev.pipeline(entry, spec), buffers, push, (workgroups(pl.threads, entry.local_size[0]), 1, 1))
