"""im2col's thread layouts (runtime/families/q8ta_conv2d/im2col.py): the kernel-row split and the stream
path; other threads, the same matrix.

A CPU device never splits nor streams by itself, so these force each on every im2col variant the
manifest has, through every layout it reads, and compare with the oracle; the property tests draw
both too.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import runtime.families.q8ta_conv2d.im2col as im2col_host
from runtime.core.layouts import Layout
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d import oracle
from runtime.families.q8ta_conv2d.im2col import (
    CPU_MIN_THREADS,
    GPU_MIN_THREADS,
    PATH_NAMES,
    PATH_STAGED,
    PATH_STREAM,
    PATH_WINDOW,
    PATH_WORDS,
    SPLIT_PATHS,
    STAGE_MAX_BYTES,
    STREAM_MAX_ITERS,
    auto_kh_parts,
    auto_stream,
    matrix_of,
    path_for,
    plan,
    stage_plan,
    stream_fanout,
    stream_fits,
    stream_fixed_taps,
)
from runtime.families.q8ta_conv2d.op import run_im2col_q8
from runtime.oplib.conv import conv_geometry

MANIFEST = load_manifest()
VARIANTS = sorted(e.name for e in MANIFEST.entries(role="im2col"))
LAYOUTS = {n: Layout.from_dict(n, MANIFEST.layouts[n]) for n in MANIFEST.layouts}

# (N, C, H, W, groups, KH, KW, stride, padding, dilation): a window-path shape (4W4C, rows on block
# boundaries), a dilated one (words path), one whose KH is prime and larger than any split drawn, and
# a grouped one with a stride
SHAPES = {
    "5x3_window": (1, 8, 9, 12, 1, 5, 3, 1, (2, 1), 1),
    "3x3_dilated": (2, 12, 10, 7, 1, 3, 3, 1, 2, (2, 1)),
    "7x1_tall": (1, 4, 13, 8, 1, 7, 1, (2, 1), (3, 0), 1),
    "grouped_s2": (1, 16, 11, 11, 2, 3, 3, 2, 1, 1),
}
# the stream path's own: depthwise-like groups starting mid-word (native shifts them down), a
# matrix of over 2 * CPU_MIN_THREADS blocks, so that a thread writes several and the last workgroup's
# run ends early, and stride_w 2 over widths that end mid-block, with padding (on 4W4C, a row block's
# words then straddle input blocks): an RGB-like 7x7 stem, and a dilated depthwise conv. Native groups
# of 1 or 2 channels share a thread's loads (stream_fanout): depthwise and 2-channel groups whose
# count is no multiple of 4 / Cg (the last word's missing groups write nothing), and a depthwise conv
# of several units per thread. Strides 3 and 4, groups of 3 channels starting mid-word at stride 2, and
# a stem of several units per thread.
STREAM_SHAPES = {
    "groups_mid_word": (2, 12, 6, 8, 4, 3, 3, 1, 1, 1),
    "several_blocks": (1, 16, 22, 24, 1, 3, 3, 1, 1, 1),
    "stem_s2": (2, 3, 9, 15, 1, 7, 7, 2, 3, 1),
    "depthwise_dilated_s2": (1, 8, 7, 15, 8, 3, 3, 2, 2, 2),
    "depthwise_ragged": (2, 6, 5, 12, 6, 3, 3, 1, 1, 1),
    "pairs_ragged": (1, 10, 6, 8, 5, 3, 5, 1, (1, 2), 1),
    "depthwise_many_units": (1, 40, 24, 24, 40, 3, 3, 1, 1, 1),
    "stride3_5x5": (1, 4, 9, 34, 1, 5, 5, 3, (1, 2), 1),
    "mid_word_s2": (2, 6, 7, 15, 2, 3, 3, 2, (0, 1), 1),
    "stride4_3x7": (1, 2, 6, 30, 1, 3, 7, 4, (1, 3), 1),
    "stem_many_units": (2, 3, 64, 96, 1, 7, 7, 2, 3, 1),
}


def _layouts(variant: str) -> list[str]:
    layout = MANIFEST.variant(variant).axes.get("input_layout", "generic")
    return sorted(LAYOUTS) if layout == "generic" else [str(layout)]


def _oracle(variant: str, args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """The matrix in the variant's format and, native, the mask of its real-channel columns."""
    if matrix_of(MANIFEST.variant(variant)) == "upstream":
        return oracle.im2col_upstream(*args), None
    return oracle.im2col(*args)


def _assert_matrix(got: np.ndarray, want: np.ndarray, mask: np.ndarray | None, where: str) -> None:
    if mask is None:
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        real = np.broadcast_to(mask, want.shape)
        np.testing.assert_array_equal(got[real], want[real], err_msg=where)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_split_writes_the_unsplit_matrix(variant: str, shape: str) -> None:
    N, C, H, W, G, KH, KW, s, p, d = SHAPES[shape]
    x = np.random.default_rng(7).integers(-128, 128, size=(N, C, H, W), dtype=np.int8)
    want, mask = _oracle(variant, (x, KH, KW, s, p, d, G, -7))
    for layout in _layouts(variant):
        for parts in (1, 2, 3, KH, KH + 4):
            got, ran = run_im2col_q8(x, KH, KW, stride=s, padding=p, dilation=d, groups=G, x_zp=-7,
                                     input_layout=layout, variant=variant, guard=True, kh_parts=parts,
                                     pad_garbage=np.random.default_rng(parts))
            assert ran == variant
            _assert_matrix(got, want, mask, f"{variant} reading {layout}, kh_parts={parts}")


# the stream path's loops: taps carried, a thread on one tap (STREAM_FIXED) wherever a workgroup holds a
# place's blocks, or that from staged input rows (the staged path) where they fit; "auto" is the host's
# own rule. (STREAM_FIXED_MIN_BLOCKS, STREAM_FIXED_MAX_IDLE, STAGED)
LOOPS = {"auto": (im2col_host.STREAM_FIXED_MIN_BLOCKS, im2col_host.STREAM_FIXED_MAX_IDLE, im2col_host.STAGED),
         "carried": (0, -1.0, True), "fixed": (0, 1.0, False), "staged": (0, 1.0, True)}


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("shape", sorted({**SHAPES, **STREAM_SHAPES}))
@pytest.mark.parametrize("variant", VARIANTS)
def test_stream_path_writes_the_same_matrix(variant: str, shape: str, loop: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in zip(("STREAM_FIXED_MIN_BLOCKS", "STREAM_FIXED_MAX_IDLE", "STAGED"), LOOPS[loop], strict=True):
        monkeypatch.setattr(im2col_host, name, value)
    N, C, H, W, G, KH, KW, s, p, d = {**SHAPES, **STREAM_SHAPES}[shape]
    x = np.random.default_rng(11).integers(-128, 128, size=(N, C, H, W), dtype=np.int8)
    entry = MANIFEST.variant(variant)
    want, mask = _oracle(variant, (x, KH, KW, s, p, d, G, 9))
    geom = conv_geometry(x.shape, (C, C // G, KH, KW), stride=s, padding=p, dilation=d, groups=G)
    for layout in _layouts(variant):
        got, _ = run_im2col_q8(x, KH, KW, stride=s, padding=p, dilation=d, groups=G, x_zp=9, input_layout=layout,
                               variant=variant, guard=True, stream=True, pad_garbage=np.random.default_rng(3))
        pl = plan(entry, LAYOUTS[layout], geom, stream=True, min_threads=CPU_MIN_THREADS)
        if pl.path in (PATH_STREAM, PATH_STAGED) and loop != "auto":  # the loop asked for is the one that ran
            fixed = loop != "carried" and pl.k4_group <= entry.local_size[0]
            staged = loop == "staged" and fixed and pl.matrix == "native" and pl.group_fanout == 1
            assert (pl.fixed_taps, pl.path == PATH_STAGED) == (fixed, staged)
        on = PATH_NAMES[pl.path] + (" path, one tap per thread" if pl.fixed_taps else " path")
        _assert_matrix(got, want, mask, f"{variant} reading {layout} on the {on}")


def test_stream_fixed_taps_for_places_over_a_warp_where_few_threads_sit_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # places of up to 32 blocks (a warp) keep carrying; of more, where at most 1/8 of the threads sit out
    assert [stream_fixed_taps(k4g, 64) for k4g in (1, 9, 32, 33, 36, 49, 64, 65)] == [
        False, False, False, False, False, False, True, False]
    assert [stream_fixed_taps(k4g, 256) for k4g in (9, 49, 63, 100, 144, 256)] == [
        False, True, True, False, False, True]  # threads busy: 245, 252, 200, 144, 256 of 256
    monkeypatch.setattr(im2col_host, "STREAM_FIXED_MIN_BLOCKS", 0)
    entry = MANIFEST.variant(next(n for n in VARIANTS if "4w4c" in n and "native" in n))
    wg = entry.local_size[0]
    geom = conv_geometry((1, 6, 40, 40), (6, 1, 3, 3), stride=1, padding=1, dilation=1, groups=6)
    pl = plan(entry, LAYOUTS["4w4c"], geom, stream=True, min_threads=CPU_MIN_THREADS)
    assert pl.fixed_taps and pl.stream_threads == wg // 9 * 9
    # every unit has a thread: the workgroups cover the units at stream_threads per step
    per_workgroup = pl.stream_threads * pl.strip * pl.stream_iters
    assert pl.threads // wg == -(-pl.units // per_workgroup)


def test_stream_fits_whole_words_and_block_rows() -> None:
    def geom(C: int, W: int, groups: int = 1, stride: int = 1) -> Any:
        return conv_geometry((1, C, 8, W), (C, C // groups, 3, 3), stride=stride, padding=1, dilation=1,
                             groups=groups)
    words, bytes_ = LAYOUTS["4w4c"], LAYOUTS["contig"]
    assert stream_fits(words, geom(8, 12), "native") and stream_fits(words, geom(8, 12), "upstream")
    assert not stream_fits(bytes_, geom(8, 12), "native")  # one byte per element: no channel words
    assert not stream_fits(words, geom(8, 10), "native")  # W_out 10: native rows are flattened
    assert stream_fits(words, geom(8, 10), "upstream")  # upstream pads its rows to blocks
    assert stream_fits(words, geom(12, 12, groups=3), "native")  # groups of 4 channels start mid-word
    assert not stream_fits(words, geom(12, 12, groups=4), "upstream")  # 3 channels: upstream's byte order


def test_stream_fanout_only_where_groups_share_a_word() -> None:
    def geom(C: int, groups: int) -> Any:
        return conv_geometry((1, C, 8, 8), (C, C // groups, 3, 3), stride=1, padding=1, dilation=1, groups=groups)
    assert [stream_fanout(geom(C, G), "native") for C, G in ((6, 6), (10, 5), (12, 4), (16, 4), (8, 1), (1, 1))] == [
        4, 2, 1, 1, 1, 1]
    assert stream_fanout(geom(6, 6), "upstream") == 1  # not whole words: upstream never streams them
    entry = MANIFEST.variant(next(n for n in VARIANTS if "4w4c" in n and "native" in n))
    pl = plan(entry, LAYOUTS["4w4c"], geom(10, 5), stream=True, min_threads=CPU_MIN_THREADS)
    assert (pl.path, pl.group_fanout, pl.units) == (PATH_STREAM, 2, 3 * pl.blocks // 5)
    assert plan(entry, LAYOUTS["4w4c"], geom(10, 5), stream=False).group_fanout == 1


def test_stream_plan_blocks_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(im2col_host, "STAGED", False)
    entry = MANIFEST.variant(next(n for n in VARIANTS if "4w4c" in n and "native" in n))
    wg = entry.local_size[0]
    layout = LAYOUTS["4w4c"]
    small, large = _geometry(16, 8, 3), _geometry(64, 256, 3)
    pl = plan(entry, layout, small, stream=True)
    assert (pl.path, pl.stream_iters) == (PATH_STREAM, 1)
    assert pl.blocks == 1 * 8 * 2 * 9 * 4 and pl.threads == -(-pl.blocks // (wg * pl.strip)) * wg
    pl = plan(entry, layout, large, stream=True)
    assert pl.stream_iters == min(STREAM_MAX_ITERS, pl.blocks // (GPU_MIN_THREADS * pl.strip)) > 1
    per_thread = pl.strip * pl.stream_iters
    assert pl.threads * per_thread >= pl.blocks > (pl.threads - wg) * per_thread  # no idle workgroup
    assert plan(entry, layout, large, stream=True, min_threads=CPU_MIN_THREADS).stream_iters == STREAM_MAX_ITERS
    assert plan(entry, layout, large, stream=False).path == PATH_WINDOW


def _geometry(C: int, H: int, KH: int, groups: int = 1) -> Any:
    return conv_geometry((1, C, H, H), (C, C // groups, KH, KH), stride=1, padding=KH // 2, dilation=1,
                         groups=groups)


def test_stage_plan_rows_fill_the_device_within_shared_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    stem = conv_geometry((16, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3, dilation=1, groups=1)
    st = stage_plan(stem, 256, GPU_MIN_THREADS)
    assert st is not None
    # 229 input columns (4 * 28 - 1) * 2 + 6 + 1; 16 x 112 rows over 512 workgroups: 4 rows, 13 input rows
    assert (st.rows, st.width, st.words, st.workgroups) == (4, 229, 13 * 229, 16 * 28)
    fit = (STAGE_MAX_BYTES // 4 // 229 - 7) // 2 + 1  # the most rows whose input fits
    assert stage_plan(stem, 256, 256).rows == fit  # one workgroup asked for: as many rows as fit
    assert stage_plan(stem, 256, 1 << 30).rows == 1  # more workgroups asked for than rows
    small = stage_plan(stem, 256, 256, 10 << 10)  # less shared memory: 11 input rows, so 3 output rows
    assert small is not None and (small.rows, small.words) == (3, 11 * 229)
    assert stage_plan(stem, 256, 256, 6 << 10) is None  # not even one row's 7 input rows
    wide = conv_geometry((1, 64, 8, 2048), (64, 64, 3, 3), stride=1, padding=1, dilation=1, groups=1)
    assert stage_plan(wide, 256, GPU_MIN_THREADS) is None  # 3 rows of 2050 x 16 words: over STAGE_MAX_BYTES
    monkeypatch.setattr(im2col_host, "MAX_WORKGROUPS_X", 16 * -(-112 // fit))
    st = stage_plan(stem, 256, 1 << 30)
    assert st is not None and st.rows == fit  # more rows than asked, to keep the workgroups in range
    monkeypatch.setattr(im2col_host, "MAX_WORKGROUPS_X", 16 * -(-112 // fit) - 1)
    assert stage_plan(stem, 256, 1 << 30) is None  # not even the rows that fit are few enough


def test_split_threads_and_rows() -> None:
    entry = MANIFEST.variant(next(n for n in VARIANTS if "4w4c" in n and "native" in n))
    geom = _geometry(64, 16, 5)
    assert path_for(LAYOUTS["4w4c"], geom, "native") == PATH_WINDOW
    whole = plan(entry, LAYOUTS["4w4c"], geom)
    assert (whole.kh_parts, whole.kh_rows) == (1, 5)
    for asked, parts, rows in ((2, 2, 3), (3, 3, 2), (4, 3, 2), (5, 5, 1), (99, 5, 1)):
        pl = plan(entry, LAYOUTS["4w4c"], geom, asked)
        assert (pl.kh_parts, pl.kh_rows) == (parts, rows), asked  # no empty part: 4 asked gives 3 of 2 rows
        assert pl.threads == parts * whole.threads


def test_byte_paths_never_split() -> None:
    entry = MANIFEST.variant(next(n for n in VARIANTS if "generic" in n and "native" in n))
    geom = _geometry(8, 12, 3)
    assert path_for(LAYOUTS["contig"], geom, "native") not in SPLIT_PATHS
    assert plan(entry, LAYOUTS["contig"], geom, 3).kh_parts == 1
    assert path_for(LAYOUTS["4c1w"], geom, "native") == PATH_WORDS
    assert plan(entry, LAYOUTS["4c1w"], geom, 3).kh_parts == 3


@pytest.mark.parametrize("device_type", ["cpu", "discrete", "integrated"])
def test_auto_split_fills_a_gpu_only(device_type: str) -> None:
    dev: Any = SimpleNamespace(info=SimpleNamespace(device_type=device_type))
    entry = MANIFEST.variant(next(n for n in VARIANTS if "4w4c" in n and "native" in n))
    small, large = _geometry(512, 16, 3), _geometry(64, 256, 3)
    layout = LAYOUTS["4w4c"]
    # the stream path: on a GPU, for groups of one channel word only
    assert not auto_stream(dev, entry, layout, large)
    assert auto_stream(dev, entry, layout, _geometry(144, 112, 3, groups=144)) == (device_type != "cpu")
    assert auto_stream(dev, entry, layout, _geometry(96, 32, 3, groups=32)) == (device_type != "cpu")  # Cg 3
    if device_type == "cpu":
        assert auto_kh_parts(dev, entry, layout, small) == auto_kh_parts(dev, entry, layout, large) == 1
        assert auto_kh_parts(dev, entry, layout, _geometry(144, 112, 3, groups=144)) == 1
        return
    assert plan(entry, layout, large).threads >= GPU_MIN_THREADS
    assert auto_kh_parts(dev, entry, layout, large) == 1  # already fills the device
    assert plan(entry, layout, small).threads < GPU_MIN_THREADS
    assert auto_kh_parts(dev, entry, layout, small) == 3  # capped at KH
    # depthwise: threads enough already, but one channel word each: a kernel row per part
    depthwise = _geometry(144, 112, 3, groups=144)
    assert plan(entry, layout, depthwise).threads >= GPU_MIN_THREADS
    assert auto_kh_parts(dev, entry, layout, depthwise) == 3


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"stream": "yes"}, TypeError, "stream must be True, False or None"),
    ({"stream": 1}, TypeError, "stream must be True, False or None"),
    ({"kh_parts": 0}, ValueError, "kh_parts"),
])
def test_bad_thread_choices_name_the_argument(kwargs: dict[str, Any], error: type[Exception], names: str) -> None:
    x = np.zeros((1, 8, 6, 8), np.int8)
    with pytest.raises(error, match=names):
        run_im2col_q8(x, 3, 3, padding=1, **kwargs)
