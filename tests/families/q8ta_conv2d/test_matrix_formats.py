"""The two im2col matrix formats (runtime/oplib/gemm_formats.py): upstream's byte for byte, and both
giving the same conv.

Byte-level cases are written from the rules of /work/shared/upstream-layouts.md directly (loops over
the format's own indices), not from the oracle or the packing code they check.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from bench import upstream as upstream_shaders
from runtime.core.layouts import Layout
from runtime.core.manifest import load_manifest
from runtime.families.q8ta_conv2d import oracle
from runtime.families.q8ta_conv2d.im2col import (
    PATH_BYTES,
    PATH_WINDOW,
    PATH_WINDOW_BYTES,
    PATH_WORDS,
    matrix_bytes,
    matrix_of,
    path_for,
)
from runtime.families.q8ta_conv2d.op import matrix_formats, run_conv2d_q8, run_im2col_q8
from runtime.oplib import gemm_formats as gf
from runtime.oplib.conv import ConvGeometry, conv_geometry

MANIFEST = load_manifest()
IM2COL = {(e.axes["input_layout"], e.axes["matrix"], e.axes["work"]["strip"]): e.name
          for e in MANIFEST.entries(role="im2col")}


def geometry(N: int, C: int, H: int, W: int, G: int, KH: int, KW: int, s: Any = 1, p: Any = 0, d: Any = 1
             ) -> ConvGeometry:
    return conv_geometry((N, C, H, W), (G, C // G, KH, KW), stride=s, padding=p, dilation=d, groups=G)


def literal_upstream_words(x: np.ndarray, geom: ConvGeometry, zp: int) -> np.ndarray:
    """The packed upstream matrix, one byte at a time from the document's rules."""
    n_, _, h_, w_ = x.shape
    wp = -(-geom.W_out // 4) * 4
    kg = -(-geom.KH * geom.KW * geom.Cg // 4) * 4
    k_ = geom.groups * kg
    out = np.zeros(n_ * geom.H_out * wp * k_, dtype=np.uint8)
    for n, ho, wo, g, kk in itertools.product(range(n_), range(geom.H_out), range(wp), range(geom.groups), range(kg)):
        value = zp  # K padding of the group, and taps outside the image
        if kk < geom.KH * geom.KW * geom.Cg:
            c, tap = kk % geom.Cg, kk // geom.Cg  # channel fastest, then kernel x, then kernel y
            kh, kw = tap // geom.KW, tap % geom.KW
            hi = ho * geom.stride[0] - geom.padding[0] + kh * geom.dilation[0]
            wi = wo * geom.stride[1] - geom.padding[1] + kw * geom.dilation[1]
            if 0 <= hi < h_ and 0 <= wi < w_:
                value = int(x[n, g * geom.Cg + c, hi, wi])
        k = g * kg + kk
        word = (((n * geom.H_out + ho) * (wp // 4) + wo // 4) * (k_ // 4) + k // 4) * 4 + wo % 4
        out[4 * word + k % 4] = value & 255
    return out.view("<i4").astype(np.int32)


# groups > 1, C_in % 4 != 0 (per group too), W_out % 4 != 0, batch, stride, dilation
FIXED = {
    "groups2_cg3_wout3": (2, 6, 4, 3, 2, 2, 2, 1, (1, 0), 1),
    "cin5_wout7_stride2": (1, 5, 5, 13, 1, 3, 3, 2, 1, 1),
    "depthwise_wout6": (1, 4, 5, 6, 4, 3, 3, 1, 1, 1),
    "groups3_cg4_dilated": (2, 12, 6, 9, 3, 3, 3, 1, 2, (1, 2)),
}


def _x(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)


def test_tiny_case_bytes_spelled_out() -> None:
    # one pixel, one channel, a 1x1 kernel: K = 4 (1 + 3 padding), the row padded to 4 pixels; the
    # padding pixels 1..3 would read input columns 1..3, outside a 1-wide image: zero points too
    x = np.array([[[[-7]]]], dtype=np.int8)
    geom = geometry(1, 1, 1, 1, 1, 1, 1)
    zp = 5
    want = np.array([0x050505F9, 0x05050505, 0x05050505, 0x05050505], dtype=np.uint32).view(np.int32)
    np.testing.assert_array_equal(literal_upstream_words(x, geom, zp), want)
    np.testing.assert_array_equal(gf.pack_matrix_upstream(oracle.im2col_upstream(x, 1, 1, 1, 0, 1, 1, zp)), want)


def test_tiny_grouped_case_bytes_spelled_out() -> None:
    # 2 groups of 1 channel, 1x2 kernel, W = 2 -> W_out 1: group g's K = [x(c=g, w=0), x(c=g, w=1), zp, zp]
    x = np.array([[[[1, 2]], [[3, 4]]]], dtype=np.int8)
    geom = geometry(1, 2, 1, 2, 2, 1, 2)
    words = literal_upstream_words(x, geom, 0)
    # K4 = 2 (one per group): pixel 0 -> ints 0 and 4; padding pixels 1..3 read columns 1.. (col 1 real)
    assert words.view(np.uint32)[0] == 0x00000201 and words.view(np.uint32)[4] == 0x00000403
    assert words.view(np.uint32)[1] == 0x00000002 and words.view(np.uint32)[5] == 0x00000004
    np.testing.assert_array_equal(gf.pack_matrix_upstream(oracle.im2col_upstream(x, 1, 2, 1, 0, 1, 2, 0)), words)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_oracle_and_packing_match_the_rules(name: str) -> None:
    N, C, H, W, G, KH, KW, s, p, d = FIXED[name]
    x = _x((N, C, H, W), 1)
    geom = geometry(N, C, H, W, G, KH, KW, s, p, d)
    want = literal_upstream_words(x, geom, -9)
    got = oracle.im2col_upstream(x, KH, KW, s, p, d, G, -9)
    assert got.shape == (N, geom.H_out, -(-geom.W_out // 4) * 4, G * gf.upstream_group_k(geom))
    np.testing.assert_array_equal(gf.pack_matrix_upstream(got), want)
    np.testing.assert_array_equal(gf.unpack_matrix_upstream(want, geom), got)
    assert want.nbytes == matrix_bytes(geom, "upstream") == 4 * gf.upstream_matrix_words(geom)


@pytest.mark.parametrize("name", sorted(FIXED))
@pytest.mark.parametrize("variant", sorted(n for k, n in IM2COL.items() if k[1] == "upstream"))
def test_device_im2col_writes_upstream_bytes(name: str, variant: str) -> None:
    N, C, H, W, G, KH, KW, s, p, d = FIXED[name]
    x = _x((N, C, H, W), 2)
    geom = geometry(N, C, H, W, G, KH, KW, s, p, d)
    want = literal_upstream_words(x, geom, 3)
    layouts = ["4w4c"] if "4w4c" in variant else sorted(MANIFEST.layouts)
    for layout in layouts:
        got, ran = run_im2col_q8(x, KH, KW, stride=s, padding=p, dilation=d, groups=G, x_zp=3, input_layout=layout,
                                 variant=variant, guard=True, pad_garbage=np.random.default_rng(3))
        assert ran == variant
        np.testing.assert_array_equal(gf.pack_matrix_upstream(got), want, err_msg=f"{variant} reading {layout}")


def test_weight_order_upstream() -> None:
    w = _x((4, 3, 2, 2), 4)  # 2 groups of 2 output channels, Cg 3, 2x2 kernel: Kg = 12
    wm = gf.weight_matrix_upstream(w, 2)
    assert wm.shape == (2, 12, 2)
    for g, kh, kw, c, o in itertools.product(range(2), range(2), range(2), range(3), range(2)):
        assert wm[g, (kh * 2 + kw) * 3 + c, o] == w[g * 2 + o, c, kh, kw]
    words, _ = gf.pack_weights_q8(w, 2, "upstream")
    np.testing.assert_array_equal(gf.unpack_weights_q8(words, 2, 12, 2), wm)
    with pytest.raises(ValueError, match="matrix='tiled'"):
        gf.pack_weights_q8(w, 2, "tiled")


@pytest.mark.parametrize("K4", [1, 4, 6, 9])
def test_interleaved_weight_words(K4: int) -> None:
    G, OCg = 2, 3
    words = np.arange(1, G * K4 * OCg + 1, dtype=np.int32)
    got = gf.interleave_k_words(words, G, K4, OCg).reshape(G, -(-K4 // 4), OCg, 4)
    for g, k4, n in itertools.product(range(G), range(4 * got.shape[1]), range(OCg)):
        want = words[(g * K4 + k4) * OCg + n] if k4 < K4 else 0
        assert got[g, k4 // 4, n, k4 % 4] == want, (g, k4, n)
    with pytest.raises(ValueError, match=r"expected 18 int32 weight words \(\[G\]\[K4\]\[OCg\] = \[2\]\[3\]\[3\]\)"):
        gf.interleave_k_words(words[:5], G, 3, OCg)


def test_gemm_view_round_trip() -> None:
    geom = geometry(2, 6, 4, 3, 2, 2, 2, 1, (1, 0))
    a = oracle.im2col_upstream(_x((2, 6, 4, 3), 5), 2, 2, 1, (1, 0), 1, 2, 0)
    view = gf.upstream_to_gemm(a, geom)
    assert view.shape == (2, geom.M, gf.upstream_group_k(geom))
    back = gf.gemm_to_upstream(view, geom, pad_value=0)
    np.testing.assert_array_equal(back[:, :, : geom.W_out], a[:, :, : geom.W_out])


def test_formats_are_the_same_bytes_where_they_agree() -> None:
    geom = geometry(2, 8, 5, 8, 1, 3, 3, 1, 1)
    assert gf.formats_agree(geom)
    x = _x((2, 8, 5, 8), 6)
    native, _ = run_im2col_q8(x, 3, 3, padding=1, x_zp=-1, variant=IM2COL[("4w4c", "native", 4)])
    upstream, _ = run_im2col_q8(x, 3, 3, padding=1, x_zp=-1, variant=IM2COL[("4w4c", "upstream", 1)])
    np.testing.assert_array_equal(gf.pack_matrix_4w4c(native), gf.pack_matrix_upstream(upstream))
    for disagree in (geometry(1, 8, 5, 7, 1, 3, 3, 1, 1), geometry(1, 6, 5, 8, 1, 3, 3), geometry(1, 8, 5, 8, 2, 3, 3)):
        assert not gf.formats_agree(disagree)


# many convs, both formats: the outputs must be identical bytes (same integers, same epilogue)
CONVS = [
    # N, C_in, H, W, C_out, G, KH, KW, stride, padding, dilation, layout
    (1, 3, 9, 10, 5, 1, 3, 3, 1, 1, 1, "4w4c"),
    (2, 6, 7, 9, 4, 2, 3, 2, 1, 1, 1, "4w4c"),
    (1, 6, 8, 11, 6, 6, 3, 3, 1, 1, 1, "4w4c"),
    (1, 5, 9, 13, 8, 1, 7, 7, 2, 3, 1, "4w4c"),
    (3, 12, 5, 7, 9, 3, 3, 3, (2, 1), 1, (1, 2), "4c"),
    (1, 8, 6, 6, 8, 1, 3, 3, 1, 1, 1, "4c1w"),
    (2, 7, 5, 5, 7, 7, 3, 3, 1, 0, 1, "contig"),
    (1, 10, 6, 10, 4, 2, 3, 3, 4, 1, 1, "4w4c"),
    (1, 16, 4, 9, 8, 4, 1, 1, 1, 0, 1, "4c"),
    (2, 9, 7, 8, 6, 3, 5, 5, 2, 2, 1, "4w4c"),
    (1, 2, 5, 6, 4, 2, 2, 2, 1, 1, 1, "contig"),
    (1, 4, 11, 11, 12, 1, 4, 4, 3, 0, 1, "4w4c"),
]


@pytest.mark.parametrize("case", CONVS, ids=[f"conv{i}" for i in range(len(CONVS))])
def test_both_formats_give_identical_conv_outputs(case: tuple[Any, ...]) -> None:
    N, C, H, W, C_out, G, KH, KW, s, p, d, layout = case
    rng = np.random.default_rng(len(str(case)))
    x = rng.integers(-128, 128, size=(N, C, H, W), dtype=np.int8)
    w = rng.integers(-128, 128, size=(C_out, C // G, KH, KW), dtype=np.int8)
    scales = rng.uniform(0.001, 0.02, C_out).astype(np.float32)
    bias = rng.standard_normal(C_out).astype(np.float32)
    kw = dict(x_scale=0.05, x_zp=-4, out_scale=0.5, out_zp=3, stride=s, padding=p, dilation=d, groups=G,
              input_layout=layout, guard=True)
    runs = {m: run_conv2d_q8(x, w, scales, bias, matrix=m, **kw) for m in gf.MATRIX_FORMATS}
    for m, run in runs.items():
        read = matrix_of(MANIFEST.variant(run.gemm_variant))  # the format the GEMM reads (its axis)
        assert read == m or gf.formats_agree(run.geometry), (m, run.gemm_variant)
    np.testing.assert_array_equal(runs["native"].output, runs["upstream"].output)
    want, _ = oracle.conv2d_q8_reference(x, w, scales, bias, **{k: v for k, v in kw.items()
                                                               if k not in ("input_layout", "guard")})
    assert np.abs(runs["native"].output.astype(int) - want).max() <= 1


def test_pick_prefers_the_smaller_matrix_and_keeps_passes_together() -> None:
    depthwise = geometry(1, 8, 8, 7, 8, 3, 3, 1, 1)  # native pads each tap to 4 channels: 3x larger
    assert matrix_formats(MANIFEST, depthwise, None, {})[0] == "upstream"
    wide_rows = geometry(1, 8, 8, 5, 1, 3, 3, 1, 1)  # upstream pads W_out 5 to 8
    assert matrix_formats(MANIFEST, wide_rows, None, {})[0] == "native"
    assert set(matrix_formats(MANIFEST, geometry(1, 8, 8, 8, 1, 3, 3, 1, 1), None, {})) == set(gf.MATRIX_FORMATS)
    native_gemm = next(n for n in MANIFEST.names(role="gemm") if n.endswith("_native"))
    assert matrix_formats(MANIFEST, depthwise, None, {"gemm_variant": native_gemm}) == ("native",)
    with pytest.raises(ValueError, match="share one matrix format"):
        matrix_formats(MANIFEST, depthwise, "upstream", {"gemm_variant": native_gemm})
    with pytest.raises(ValueError, match="matrix"):
        matrix_formats(MANIFEST, depthwise, "blocked", {})


def test_conv_rejects_passes_of_different_formats() -> None:
    x = _x((1, 6, 5, 7), 7)
    w = _x((6, 3, 3, 3), 8)
    up_gemm = next(n for n in MANIFEST.names(role="gemm") if n.endswith("_upstream"))
    with pytest.raises(ValueError, match="share one matrix format"):
        run_conv2d_q8(x, w, np.full(6, 0.01, np.float32), None, x_scale=0.1, x_zp=0, out_scale=1.0, out_zp=0,
                      groups=2, im2col_variant=IM2COL[("4w4c", "native", 1)], gemm_variant=up_gemm)
    run = run_conv2d_q8(x, w, np.full(6, 0.01, np.float32), None, x_scale=0.1, x_zp=0, out_scale=1.0, out_zp=0,
                        groups=2, gemm_variant=up_gemm)
    assert run.im2col_variant.split("_")[4] == "upstream"  # the other pass follows the forced one


def test_paths_cover_the_cases_they_claim() -> None:
    lay = {n: Layout.from_dict(n, MANIFEST.layouts[n]) for n in MANIFEST.layouts}
    assert path_for(lay["4w4c"], geometry(1, 8, 8, 8, 1, 3, 3, 1, 1), "native") == PATH_WINDOW
    assert path_for(lay["4w4c"], geometry(1, 8, 8, 7, 1, 3, 3, 1, 1), "native") == PATH_WORDS  # rows straddle
    assert path_for(lay["4w4c"], geometry(1, 8, 8, 7, 1, 3, 3, 1, 1), "upstream") == PATH_WINDOW
    assert path_for(lay["4w4c"], geometry(1, 3, 9, 9, 1, 3, 3, 2, 1), "upstream") == PATH_WINDOW_BYTES
    assert path_for(lay["4c"], geometry(1, 3, 9, 9, 1, 3, 3, 2, 1), "upstream") == PATH_BYTES
    assert path_for(lay["contig"], geometry(1, 8, 8, 8, 1, 3, 3, 1, 1), "native") == PATH_BYTES
    assert path_for(lay["4c1w"], geometry(1, 8, 8, 8, 1, 3, 3, 1, 1), "upstream") == PATH_WORDS


def test_upstream_shaders_absent_are_not_present(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_shaders, "FOLDER", tmp_path)
    assert upstream_shaders.find() == {label: None for label, _ in upstream_shaders.SHADERS}
    assert upstream_shaders.NOT_PRESENT == "n/a (upstream shader not present)"


@pytest.mark.skipif(not any(upstream_shaders.find().values()), reason=upstream_shaders.NOT_PRESENT)
def test_upstream_shaders_write_the_same_bytes_as_ours() -> None:
    """Only where a hand expansion of upstream's shaders sits in .upstream/ (never committed)."""
    from runtime.core.device import default_device

    dev = default_device()
    L = Layout.from_dict("4w4c", MANIFEST.layouts["4w4c"])
    for label, shader in upstream_shaders.find().items():
        if shader is None:
            continue
        for N, C, H, W, KH, s in ((1, 8, 7, 9, 3, 1), (1, 12, 6, 8, 1, 1), (2, 8, 7, 10, 3, 2)):
            geom = geometry(N, C, H, W, 1, KH, KH, s, KH // 2)
            if upstream_shaders.applies(label, geom, "4w4c"):
                continue
            x = _x((N, C, H, W), 9)
            with dev.alloc(matrix_bytes(geom, "upstream")) as out:
                dev.run([upstream_shaders.im2col_step(dev, shader, L, L, geom, L.pack(x), -2, out)])
                got = out.read(np.int32)
            np.testing.assert_array_equal(got, literal_upstream_words(x, geom, -2), err_msg=f"{label} {geom}")
