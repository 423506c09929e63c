"""Tests for runtime/core/layouts.py and the GEMM formats of runtime/oplib/gemm_formats.py:
generic layouts against the upstream index formulas."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.core.layouts import BUILTIN_LAYOUTS, METADATA_SIZE, Layout, buffer_metadata, builtin_layout
from runtime.oplib.gemm_formats import (
    matrix_4w4c_words,
    output_4c_words,
    pack_matrix_4w4c,
    pack_output_4c,
    unpack_matrix_4w4c,
    unpack_output_4c,
)

LAYOUT_NAMES = sorted(BUILTIN_LAYOUTS)
WHCN = {"W": 0, "H": 1, "C": 2, "N": 3}
FIXED_SHAPES = [
    (1, 1, 1, 1),
    (1, 4, 4, 4),
    (1, 3, 1, 1),
    (1, 1, 1, 5),
    (2, 5, 3, 7),
    (3, 8, 2, 4),
    (1, 9, 5, 1),
    (2, 1, 6, 9),
    (1, 16, 1, 13),
]


def ceil4(v: int) -> int:
    return -(-v // 4)


def random_int8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)


def words_from_formula(x: np.ndarray, n_words: int, index) -> np.ndarray:
    """Pack with explicit loops: ``index(n, c, h, w) -> (word, byte)``; padding bytes 0."""
    buf = np.zeros(n_words * 4, dtype=np.uint8)
    N, C, H, W = x.shape
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    word, byte = index(n, c, h, w)
                    assert 0 <= byte < 4
                    buf[word * 4 + byte] = int(x[n, c, h, w]) & 0xFF
    return buf.view("<i4").astype(np.int32)


def upstream_formula(name: str, shape: tuple[int, int, int, int]):
    """(word count, index function) of the upstream layouts as written in the spec."""
    N, C, H, W = shape
    C4, W4, H4 = ceil4(C), ceil4(W), ceil4(H)
    formulas = {
        "4c": (N * H * W * C4, lambda n, c, h, w: (((n * H + h) * W + w) * C4 + c // 4, c % 4)),
        "4c1w": (N * H * C4 * W, lambda n, c, h, w: (((n * H + h) * C4 + c // 4) * W + w, c % 4)),
        "4w4c": (
            N * H * W4 * C4 * 4,
            lambda n, c, h, w: ((((n * H + h) * W4 + w // 4) * C4 + c // 4) * 4 + w % 4, c % 4),
        ),
        "4w": (N * C * H * W4, lambda n, c, h, w: (((n * C + c) * H + h) * W4 + w // 4, w % 4)),
        "4h4w": (
            N * C * H4 * W4 * 4,
            lambda n, c, h, w: ((((n * C + c) * H4 + h // 4) * W4 + w // 4) * 4 + h % 4, w % 4),
        ),
        "contig": (
            ceil4(N * C * H * W),
            lambda n, c, h, w: divmod(((n * C + c) * H + h) * W + w, 4),
        ),
    }
    return formulas[name]


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@pytest.mark.parametrize("shape", FIXED_SHAPES)
def test_round_trip_fixed(name: str, shape: tuple[int, int, int, int]) -> None:
    layout = builtin_layout(name)
    x = random_int8(shape, seed=sum(shape))
    words = layout.pack(x)
    assert words.dtype == np.int32 and words.ndim == 1
    assert words.size == layout.words(shape)
    np.testing.assert_array_equal(layout.unpack(words, shape), x)


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(LAYOUT_NAMES),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 11), st.integers(1, 9), st.integers(1, 11)),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_hypothesis(name: str, shape: tuple[int, int, int, int], seed: int) -> None:
    layout = builtin_layout(name)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    offsets = layout.byte_offsets(shape)
    # Distinct offsets inside the buffer are what makes pack/unpack a bijection.
    assert offsets.dtype == np.int64 and offsets.shape == shape
    assert np.unique(offsets).size == offsets.size
    assert offsets.min() >= 0 and offsets.max() < layout.words(shape) * 4
    for pad in (0, -1, None):
        words = layout.pack(x, pad_value=pad, rng=rng)
        assert words.size == layout.words(shape)
        np.testing.assert_array_equal(layout.unpack(words, shape), x)


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(LAYOUT_NAMES),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 6), st.integers(1, 9)),
)
def test_matches_upstream_formula_hypothesis(name: str, shape: tuple[int, int, int, int]) -> None:
    n_words, index = upstream_formula(name, shape)
    layout = builtin_layout(name)
    assert layout.words(shape) == n_words
    x = random_int8(shape, seed=7)
    np.testing.assert_array_equal(layout.pack(x), words_from_formula(x, n_words, index))


# --- byte-exact checks against the upstream formulas --------------------------------------


@pytest.mark.parametrize("name", ["4c", "4c1w", "4w4c", "4w", "4h4w", "contig"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 3, 7), (1, 8, 2, 8), (2, 3, 5, 2)])
def test_matches_upstream_formula(name: str, shape: tuple[int, int, int, int]) -> None:
    n_words, index = upstream_formula(name, shape)
    layout = builtin_layout(name)
    assert layout.words(shape) == n_words
    x = random_int8(shape, seed=3)
    np.testing.assert_array_equal(layout.pack(x), words_from_formula(x, n_words, index))


def test_4c_little_endian_bytes() -> None:
    # Channels 0..3 of one pixel: byte k of the int32 is channel k.
    x = np.array([1, 2, 3, -1], dtype=np.int8).reshape(1, 4, 1, 1)
    words = builtin_layout("4c").pack(x)
    assert words.tolist() == [np.int32(np.uint32(0xFF030201).view(np.int32))]


def test_4w4c_explicit_words() -> None:
    # C=2, W=2: one 4x4 block; int i is width i, byte k is channel k, the rest is padding.
    x = np.array([[[[1, 2]], [[3, 4]]]], dtype=np.int8)  # (1, 2, 1, 2): x[0, c, 0, w]
    words = builtin_layout("4w4c").pack(x)
    assert words.tolist() == [0x0301, 0x0402, 0, 0]


def test_4h4w_int_is_one_height() -> None:
    x = np.arange(16, dtype=np.int8).reshape(1, 1, 4, 4)
    words = builtin_layout("4h4w").pack(x).view(np.uint32)
    assert [hex(v) for v in words] == ["0x3020100", "0x7060504", "0xb0a0908", "0xf0e0d0c"]


def test_contig_rounds_up_to_whole_words() -> None:
    layout = builtin_layout("contig")
    assert layout.nbytes((1, 1, 1, 5)) == 5
    assert layout.words((1, 1, 1, 5)) == 2
    x = np.arange(1, 6, dtype=np.int8).reshape(1, 1, 1, 5)
    assert layout.pack(x).tolist() == [0x04030201, 0x05]


# --- padding ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_padding_garbage_is_ignored(name: str) -> None:
    layout = builtin_layout(name)
    shape = (2, 5, 3, 7)
    x = random_int8(shape, seed=11)
    clean = layout.pack(x, pad_value=0)
    noisy = layout.pack(x, pad_value=None, rng=np.random.default_rng(5))
    fixed = layout.pack(x, pad_value=None)
    data = np.zeros(layout.words(shape) * 4, dtype=bool)
    data[layout.byte_offsets(shape).ravel()] = True
    for words in (noisy, fixed):
        got = words.view(np.uint8)
        np.testing.assert_array_equal(got[data], clean.view(np.uint8)[data])
        np.testing.assert_array_equal(layout.unpack(words, shape), x)
    if not data.all():
        # The fixed pattern is never zero, so a shader that reads padding would notice.
        assert (fixed.view(np.uint8)[~data] != 0).all()


def test_pad_value_fills_padding() -> None:
    layout = builtin_layout("4c")
    x = np.zeros((1, 1, 1, 1), dtype=np.int8)
    assert layout.pack(x, pad_value=-1).view(np.uint32).tolist() == [0xFFFFFF00]
    assert layout.pack(x, pad_value=5).tolist() == [0x05050500]


def test_pad_value_out_of_range() -> None:
    with pytest.raises(ValueError, match="pad_value"):
        builtin_layout("4c").pack(np.zeros((1, 1, 1, 1), np.int8), pad_value=300)


def test_unpack_accepts_uint32_and_longer_buffers() -> None:
    layout = builtin_layout("4w4c")
    shape = (1, 5, 2, 3)
    x = random_int8(shape)
    words = np.concatenate([layout.pack(x), np.full(3, -1, np.int32)])
    np.testing.assert_array_equal(layout.unpack(words.view(np.uint32), shape), x)


def test_unpack_rejects_short_buffer() -> None:
    layout = builtin_layout("4c")
    with pytest.raises(ValueError, match="needs"):
        layout.unpack(np.zeros(3, np.int32), (1, 5, 1, 2))


def test_pack_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="int8 range"):
        builtin_layout("4c").pack(np.full((1, 1, 1, 1), 200, np.int32))


# --- hashed layout, strides and metadata -------------------------------------------------


def test_hashed_4w4c_bit_fields() -> None:
    h = builtin_layout("4w4c").hashed()
    # order N,H,W,C: fastest first is C(2), W(0), H(1), N(3).
    assert h & 0xF == 2
    assert (h >> 4) & 0xF == 0
    assert (h >> 8) & 0xF == 1
    assert (h >> 12) & 0xF == 3
    assert (h >> 16) & 0xF == 2  # packed dim C
    assert (h >> 20) & 0xF == 0  # outer packed dim W
    assert (h >> 24) & 0xF == 4
    assert (h >> 28) & 0xF == 4
    assert h == 0x44023102


@pytest.mark.parametrize(
    ("name", "expected"),
    [("4c", 0x14023102), ("4c1w", 0x14023120), ("4w", 0x14003210), ("4h4w", 0x44103210), ("contig", 0x11003210)],
)
def test_hashed_values(name: str, expected: int) -> None:
    """Pinned from the documented rule (shared/upstream-layouts.md): nibbles 0-3 the WHCN dims fastest
    first, 4 packed dim, 5 outer dim (W when none: 0x14023102 for 4C), 6 block, 7 outer block."""
    layout = builtin_layout(name)
    rule = sum(WHCN[d] << 4 * i for i, d in enumerate(reversed(layout.order)))
    rule |= WHCN[layout.packed_dim] << 16 | WHCN[layout.outer_dim or "W"] << 20
    rule |= layout.block << 24 | layout.outer_block << 28
    assert layout.hashed() == rule == expected


def test_hashed_i32_is_twos_complement() -> None:
    for name in LAYOUT_NAMES:
        layout = builtin_layout(name)
        h, s = layout.hashed(), layout.hashed_i32()
        assert 0 <= h < 2**32 and -(2**31) <= s < 2**31
        assert s % 2**32 == h
        assert np.array([h], np.uint32).view(np.int32)[0] == s


def test_strides_whcn_4w4c() -> None:
    # N=2, C=5 (C4=2), H=3, W=6 (W4=2); order N,H,W,C.
    assert builtin_layout("4w4c").strides_whcn((2, 5, 3, 6)) == (2, 4, 1, 12)


def test_buffer_metadata_fields() -> None:
    shape = (2, 5, 3, 6)
    data = buffer_metadata(builtin_layout("4w4c"), shape)
    assert len(data) == METADATA_SIZE == 104
    fields = struct.unpack("<26I", data)
    padded = 2 * 8 * 3 * 8  # C and W padded to multiples of 4 by the 4x4 blocks
    assert fields[0:8] == (6, 3, 5, 2, 1, 1, 1, 1)  # unused sizes are 1
    assert fields[8:16] == (2, 0, 1, 3, 4, 5, 6, 7)  # unused dim_order entries are their own index
    assert fields[16:24] == (2, 4, 1, 12, padded, padded, padded, padded)  # unused strides: padded numel
    assert fields[24:26] == (4, padded)


@pytest.mark.parametrize(("name", "padded"), [("4c", 2 * 8 * 3 * 7), ("4c1w", 2 * 8 * 3 * 7), ("contig", 2 * 5 * 3 * 7),
                                              ("4w", 2 * 5 * 3 * 8), ("4h4w", 2 * 5 * 4 * 8)])
def test_metadata_numel_is_padded(name: str, padded: int) -> None:
    fields = struct.unpack("<26I", buffer_metadata(builtin_layout(name), (2, 5, 3, 7)))
    assert fields[25] == padded and fields[20:24] == (padded,) * 4


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_metadata_strides_locate_blocks(name: str) -> None:
    """The metadata strides, applied as a shader would, give pack's byte offsets."""
    layout = builtin_layout(name)
    shape = (2, 5, 3, 7)
    fields = struct.unpack("<26I", buffer_metadata(layout, shape))
    strides = dict(zip("WHCN", fields[16:20], strict=True))
    bs = layout.block_sizes()
    offsets = layout.byte_offsets(shape)
    for n, c, h, w in [(0, 0, 0, 0), (1, 4, 2, 6), (1, 2, 1, 5), (0, 3, 2, 1)]:
        coord = {"N": n, "C": c, "H": h, "W": w}
        block = sum(coord[d] // bs[d] * strides[d] for d in "WHCN")
        inner = coord[layout.packed_dim] % layout.block
        if layout.outer_dim is not None:
            inner += coord[layout.outer_dim] % layout.outer_block * layout.block
        assert block * layout.block_bytes + inner == offsets[n, c, h, w]


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "key"),
    [
        ({"packed_dim": "X", "block": 4, "order": ["N", "H", "W", "C"]}, "packed_dim"),
        ({"packed_dim": "C", "block": 3, "order": ["N", "H", "W", "C"]}, "block"),
        ({"packed_dim": "C", "block": True, "order": ["N", "H", "W", "C"]}, "block"),
        ({"packed_dim": "C", "block": 4, "order": ["N", "H", "W"]}, "order"),
        ({"packed_dim": "C", "block": 4, "order": ["N", "H", "W", "W"]}, "order"),
        ({"packed_dim": "C", "block": 4, "order": "NHWC"}, "order"),
        ({"packed_dim": "C", "block": 4, "order": ["N", "H", "W", 1]}, "order"),
        (
            {"packed_dim": "C", "block": 4, "outer_dim": "C", "outer_block": 4, "order": ["N", "H", "W", "C"]},
            "outer_dim",
        ),
        ({"packed_dim": "C", "block": 4, "outer_block": 4, "order": ["N", "H", "W", "C"]}, "outer_block"),
        (
            {"packed_dim": "C", "block": 4, "outer_dim": "W", "outer_block": 8, "order": ["N", "H", "W", "C"]},
            "outer_block",
        ),
        ({"packed_dim": "C", "order": ["N", "H", "W", "C"]}, "block"),
        ({"packed_dim": "C", "block": 4, "order": ["N", "H", "W", "C"], "blocks": 4}, "blocks"),
    ],
)
def test_from_dict_rejects_bad_definitions(definition: dict, key: str) -> None:
    with pytest.raises(ValueError, match="bad_layout") as info:
        Layout.from_dict("bad_layout", definition)
    assert key in str(info.value)


def test_from_dict_accepts_description_and_ignores_it_for_equality() -> None:
    d = dict(BUILTIN_LAYOUTS["4w4c"], description="tiles of 4 widths x 4 channels")
    layout = Layout.from_dict("4w4c", d)
    assert layout == builtin_layout("4w4c")
    assert layout.order == ("N", "H", "W", "C")


def test_bad_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        builtin_layout("4c").words((1, 0, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        builtin_layout("4c").byte_offsets((1, 2, 2))


# --- GEMM matrix formats ------------------------------------------------------------------


@pytest.mark.parametrize(("G", "M", "Kp"), [(1, 1, 4), (1, 5, 8), (3, 9, 12), (2, 16, 36)])
def test_matrix_4w4c_round_trip_and_formula(G: int, M: int, Kp: int) -> None:
    a = random_int8((G, M, Kp), seed=G * 100 + M)
    words = pack_matrix_4w4c(a)
    M4, K4 = ceil4(M), Kp // 4
    assert words.size == matrix_4w4c_words(G, M, Kp) == G * M4 * K4 * 4
    buf = words.view(np.uint8)
    expected = np.zeros_like(buf)
    for g in range(G):
        for m in range(M):
            for k in range(Kp):
                idx = ((g * M4 + m // 4) * K4 + k // 4) * 4 + m % 4
                expected[idx * 4 + k % 4] = int(a[g, m, k]) & 0xFF
    np.testing.assert_array_equal(buf, expected)
    np.testing.assert_array_equal(unpack_matrix_4w4c(words, G, M, Kp), a)
    noisy = pack_matrix_4w4c(a, pad_value=None, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(unpack_matrix_4w4c(noisy, G, M, Kp), a)


def test_matrix_4w4c_rejects_unaligned_k() -> None:
    with pytest.raises(ValueError, match="Kp"):
        pack_matrix_4w4c(np.zeros((1, 4, 6), np.int8))


@pytest.mark.parametrize(("G", "M", "OCg"), [(1, 1, 1), (1, 7, 4), (2, 5, 6), (4, 3, 9)])
def test_output_4c_round_trip_and_formula(G: int, M: int, OCg: int) -> None:
    y = random_int8((G, M, OCg), seed=OCg)
    words = pack_output_4c(y)
    OCg4 = ceil4(OCg)
    assert words.size == output_4c_words(G, M, OCg) == G * M * OCg4
    buf = words.view(np.uint8)
    expected = np.zeros_like(buf)
    for g in range(G):
        for m in range(M):
            for oc in range(OCg):
                expected[((g * M + m) * OCg4 + oc // 4) * 4 + oc % 4] = int(y[g, m, oc]) & 0xFF
    np.testing.assert_array_equal(buf, expected)
    np.testing.assert_array_equal(unpack_output_4c(words, G, M, OCg), y)
    noisy = pack_output_4c(y, pad_value=None)
    np.testing.assert_array_equal(unpack_output_4c(noisy, G, M, OCg), y)
