"""The im2col matrix and GEMM output formats the im2col + GEMM families share (int8 and float).

The im2col matrix ``a`` (int8, shape (G, M, Kp), Kp a multiple of 4) is stored 4W4C-style:
word ``((g*M4 + m//4)*K4 + k//4)*4 + m%4``, byte ``k%4`` with M4 = ceil(M/4), K4 = Kp/4.
A word holds 4 consecutive k of one row; 4 consecutive words hold 4 consecutive rows, so one
16-byte load gives a 4x4 tile. Rows past M are padding. This is the 4w4c layout applied to
the tensor (N=G, C=Kp, H=1, W=M).

The GEMM output (int8, shape (G, M, OCg)) is stored 4C-style: word
``(g*M + m)*OCg4 + oc//4``, byte ``oc%4`` with OCg4 = ceil(OCg/4); it is the 4c layout of
the tensor (N=G, C=OCg, H=1, W=M).

The float family uses the same two formats in element offsets (:func:`pack_matrix_float`,
:func:`unpack_output_float`): a block of 16 elements holds 4 rows x 4 k (a mat4, column = row),
the output 4 channels per vec4.

The *upstream* matrix format (int8 only; /work/shared/upstream-layouts.md) is the 4W4C layout of the
tensor (N, K, H_out, Wp) with Wp = align4(W_out) and K = G * Kg, Kg = align4(KH*KW*Cg): one row per
output pixel, every image row padded to Wp pixels, the groups side by side along K, each group's
reduction index channel fastest, then kernel x, then kernel y, padded to a multiple of 4 once per
group. Word ``(((n*H_out + ho)*Wp/4 + wo//4)*K/4 + k//4)*4 + wo%4``, byte ``k%4``. Batch: images
one after another (N is the slowest dim; a single image is upstream's 3-D tensor {K, H_out, Wp}).
Its rows past W_out hold the im2col of the conv extended to Wp output columns (what upstream's shaders
write); its K padding and out-of-image taps hold the input zero point. Seen as a GEMM operand, group g
of it is rows ``(n*H_out + ho)*Wp + wo`` (including the padding pixels) by columns ``g*Kg .. g*Kg+Kg-1``
(:func:`upstream_to_gemm`, :func:`gemm_to_upstream`); its weights (:func:`weight_matrix_upstream`) are
in the same reduction order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from runtime.core.layouts import BUILTIN_LAYOUTS, Layout, as_int8

_MATRIX_4W4C = Layout.from_dict("matrix_4w4c", BUILTIN_LAYOUTS["4w4c"])
MATRIX_FORMATS = ("native", "upstream")
_OUTPUT_4C = Layout.from_dict("output_4c", BUILTIN_LAYOUTS["4c"])


def pack_matrix_4w4c(a: np.ndarray, pad_value: int | None = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pack an int8 (G, M, Kp) im2col matrix into the 4W4C matrix format."""
    a = as_int8(a, "a")
    if a.ndim != 3 or a.shape[2] % 4 != 0:
        raise ValueError(f"a must be (G, M, Kp) with Kp % 4 == 0, got shape {a.shape}")
    # (g, m, k) is element (n=g, c=k, h=0, w=m) of a 4w4c tensor.
    return _MATRIX_4W4C.pack(a.transpose(0, 2, 1)[:, :, None, :], pad_value, rng)


def unpack_matrix_4w4c(words: np.ndarray, G: int, M: int, Kp: int) -> np.ndarray:
    """Inverse of :func:`pack_matrix_4w4c`: returns int8 (G, M, Kp)."""
    if Kp % 4 != 0:
        raise ValueError(f"Kp must be a multiple of 4, got {Kp}")
    return _MATRIX_4W4C.unpack(words, (G, Kp, 1, M))[:, :, 0, :].transpose(0, 2, 1).copy()


def matrix_4w4c_words(G: int, M: int, Kp: int) -> int:
    """Word count of a packed (G, M, Kp) im2col matrix."""
    return _MATRIX_4W4C.words((G, Kp, 1, M))


def pack_output_4c(y: np.ndarray, pad_value: int | None = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pack an int8 (G, M, OCg) GEMM output into the 4C output format."""
    y = as_int8(y, "y")
    if y.ndim != 3:
        raise ValueError(f"y must be (G, M, OCg), got shape {y.shape}")
    return _OUTPUT_4C.pack(y.transpose(0, 2, 1)[:, :, None, :], pad_value, rng)


def unpack_output_4c(words: np.ndarray, G: int, M: int, OCg: int) -> np.ndarray:
    """Inverse of :func:`pack_output_4c`: returns int8 (G, M, OCg)."""
    return _OUTPUT_4C.unpack(words, (G, OCg, 1, M))[:, :, 0, :].transpose(0, 2, 1).copy()


def output_4c_words(G: int, M: int, OCg: int) -> int:
    """Word count of a packed (G, M, OCg) GEMM output."""
    return _OUTPUT_4C.words((G, OCg, 1, M))


def pack_matrix_float(a: np.ndarray) -> np.ndarray:
    """Lay a float (G, M, Kp) im2col matrix out in the 4W4C matrix format, in elements."""
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[2] % 4 != 0:
        raise ValueError(f"a must be (G, M, Kp) with Kp % 4 == 0, got shape {a.shape}")
    return _MATRIX_4W4C.pack_elements(a.transpose(0, 2, 1)[:, :, None, :])


def unpack_matrix_float(buf: np.ndarray, G: int, M: int, Kp: int) -> np.ndarray:
    """Inverse of :func:`pack_matrix_float`: returns (G, M, Kp) of the buffer's dtype."""
    if Kp % 4 != 0:
        raise ValueError(f"Kp must be a multiple of 4, got {Kp}")
    return _MATRIX_4W4C.unpack_elements(buf, (G, Kp, 1, M))[:, :, 0, :].transpose(0, 2, 1).copy()


def matrix_float_elements(G: int, M: int, Kp: int) -> int:
    """Element count of a packed float (G, M, Kp) im2col matrix (16 per 4x4 block)."""
    return _MATRIX_4W4C.slots((G, Kp, 1, M))


def unpack_output_float(buf: np.ndarray, G: int, M: int, OCg: int) -> np.ndarray:
    """The float GEMM output (4C format, in elements) -> (G, M, OCg)."""
    return _OUTPUT_4C.unpack_elements(buf, (G, OCg, 1, M))[:, :, 0, :].transpose(0, 2, 1).copy()


def output_float_elements(G: int, M: int, OCg: int) -> int:
    """Element count of a float (G, M, OCg) GEMM output (4 channels per vec4)."""
    return _OUTPUT_4C.slots((G, OCg, 1, M))


# --- the upstream matrix format ------------------------------------------------------------------


class ConvSizes(Protocol):
    """What the upstream format's sizes depend on (runtime.oplib.conv.ConvGeometry has it all)."""

    @property
    def N(self) -> int: ...
    @property
    def H_out(self) -> int: ...
    @property
    def W_out(self) -> int: ...
    @property
    def KH(self) -> int: ...
    @property
    def KW(self) -> int: ...
    @property
    def Cg(self) -> int: ...
    @property
    def groups(self) -> int: ...


def upstream_group_k(geom: ConvSizes) -> int:
    """Kg: one group's reduction length in the upstream format, KH*KW*Cg padded to a multiple of 4."""
    return -(-geom.KH * geom.KW * geom.Cg // 4) * 4


def upstream_matrix_shape(geom: ConvSizes) -> tuple[int, int, int, int]:
    """(N, K, H_out, Wp): the NCHW shape whose 4W4C layout is the upstream matrix of this conv."""
    return geom.N, geom.groups * upstream_group_k(geom), geom.H_out, -(-geom.W_out // 4) * 4


def upstream_matrix_words(geom: ConvSizes) -> int:
    """Word count of the packed upstream matrix."""
    return _MATRIX_4W4C.words(upstream_matrix_shape(geom))


def pack_matrix_upstream(a: np.ndarray, pad_value: int | None = 0, rng: np.random.Generator | None = None
                         ) -> np.ndarray:
    """Pack an int8 (N, H_out, Wp, K) upstream matrix (Wp and K multiples of 4) into its words."""
    a = as_int8(a, "a")
    if a.ndim != 4 or a.shape[2] % 4 or a.shape[3] % 4:
        raise ValueError(f"a must be (N, H_out, Wp, K) with Wp and K multiples of 4, got shape {a.shape}")
    return _MATRIX_4W4C.pack(a.transpose(0, 3, 1, 2), pad_value, rng)


def unpack_matrix_upstream(words: np.ndarray, geom: ConvSizes) -> np.ndarray:
    """Inverse of :func:`pack_matrix_upstream` for this conv's sizes: int8 (N, H_out, Wp, K)."""
    return _MATRIX_4W4C.unpack(words, upstream_matrix_shape(geom)).transpose(0, 2, 3, 1).copy()


def upstream_to_gemm(a: np.ndarray, geom: ConvSizes) -> np.ndarray:
    """The (G, M, Kg) GEMM operand of an (N, H_out, Wp, K) upstream matrix: padding pixels dropped, groups
    split off K (row m = (n*H_out + ho)*W_out + wo, as in the native format)."""
    n, _, hp, _ = upstream_matrix_shape(geom)
    kg = upstream_group_k(geom)
    rows = a[:, :, : geom.W_out, :].reshape(n * hp * geom.W_out, geom.groups, kg)
    return np.ascontiguousarray(rows.transpose(1, 0, 2))


def gemm_to_upstream(a: np.ndarray, geom: ConvSizes, pad_value: int = 0) -> np.ndarray:
    """Inverse of :func:`upstream_to_gemm`: (G, M, Kg) -> (N, H_out, Wp, K), padding pixels = `pad_value`."""
    n, k, hp, wp = upstream_matrix_shape(geom)
    kg = upstream_group_k(geom)
    if a.shape != (geom.groups, n * hp * geom.W_out, kg):
        raise ValueError(f"a must be (G, M, Kg) = {(geom.groups, n * hp * geom.W_out, kg)}, got {a.shape}")
    out = np.full((n, hp, wp, k), pad_value, dtype=np.int8)
    out[:, :, : geom.W_out, :] = a.transpose(1, 0, 2).reshape(n, hp, geom.W_out, k)
    return out


def formats_agree(geom: ConvSizes) -> bool:
    """True where the native and upstream matrices of a conv are the same bytes (groups == 1,
    C_in % 4 == 0, W_out % 4 == 0), so a pass of either format can feed one of the other."""
    return geom.groups == 1 and geom.Cg % 4 == 0 and geom.W_out % 4 == 0


# --- GEMM weights --------------------------------------------------------------------------------


def weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(G, Kp, OCg) GEMM weight matrix of a conv weight (C_out, Cg, KH, KW): k tap-major, each tap's
    channels padded with zeros to a multiple of 4, so padded im2col slots contribute nothing."""
    c_out, cg, kh, kw = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"C_out={c_out} is not divisible by groups={groups}")
    ocg, cg4 = c_out // groups, -(-cg // 4)
    out = np.zeros((groups, kh, kw, cg4 * 4, ocg), dtype=weight.dtype)
    out[:, :, :, :cg, :] = weight.reshape(groups, ocg, cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return out.reshape(groups, kh * kw * cg4 * 4, ocg)


def weight_matrix_upstream(weight: np.ndarray, groups: int) -> np.ndarray:
    """(G, Kg, OCg) GEMM weight matrix in the upstream reduction order: k = (kh*KW + kw)*Cg + c, channel
    fastest, no per-tap padding; zero rows pad Kg to a multiple of 4 once per group."""
    c_out, cg, kh, kw = weight.shape
    if groups < 1 or c_out % groups:
        raise ValueError(f"C_out={c_out} is not divisible by groups={groups}")
    ocg, k = c_out // groups, kh * kw * cg
    out = np.zeros((groups, -(-k // 4) * 4, ocg), dtype=weight.dtype)
    out[:, :k, :] = weight.reshape(groups, ocg, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, k, ocg)
    return out


def _k_words(wm: np.ndarray) -> np.ndarray:
    """(G, Kp, OCg) -> (G, K4, OCg, 4): the 4 k of each word made the fastest axis."""
    g, kp, ocg = wm.shape
    return np.ascontiguousarray(wm.reshape(g, kp // 4, 4, ocg).transpose(0, 1, 3, 2))


def pack_weights_q8(weight: np.ndarray, groups: int, matrix: str = "native") -> tuple[np.ndarray, np.ndarray]:
    """int8 GEMM weights ``[G][K4][OCg]`` int32 words (byte j = k 4*k4+j) in the reduction order of the
    `matrix` format ("native": tap-major, "upstream": channel fastest), and per-C_out weight sums."""
    weight = as_int8(weight, "weight")
    if matrix not in MATRIX_FORMATS:
        raise ValueError(f"matrix={matrix!r}: the im2col matrix formats are {MATRIX_FORMATS}")
    wm = weight_matrix(weight, groups) if matrix == "native" else weight_matrix_upstream(weight, groups)
    words = _k_words(wm).view(np.uint8).view("<i4").astype(np.int32).reshape(-1)
    wsum = np.asarray(weight, dtype=np.int64).sum(axis=(1, 2, 3)).astype(np.int32)
    return words, wsum


def unpack_weights_q8(words: np.ndarray, groups: int, Kp: int, OCg: int) -> np.ndarray:
    """Inverse of :func:`pack_weights_q8`'s words: int8 (G, Kp, OCg)."""
    words = np.ascontiguousarray(words, dtype="<i4")
    if words.size != groups * (Kp // 4) * OCg:
        raise ValueError(f"expected {groups * (Kp // 4) * OCg} words, got {words.size}")
    tiles = words.view(np.int8).reshape(groups, Kp // 4, OCg, 4)
    return tiles.transpose(0, 1, 3, 2).reshape(groups, Kp, OCg).copy()


def interleave_k_words(words: np.ndarray, groups: int, K4: int, OCg: int) -> np.ndarray:
    """:func:`pack_weights_q8`'s ``[G][K4][OCg]`` words as ``[G][ceil(K4/4)][OCg][4]``: k-words 4j .. 4j+3 of
    an output channel side by side (one 16-byte load), K4 padded with zero words."""
    words = np.asarray(words)
    if words.dtype != np.int32 or words.size != groups * K4 * OCg:
        raise ValueError(f"expected {groups * K4 * OCg} int32 weight words ([G][K4][OCg] = [{groups}][{K4}][{OCg}]), "
                         f"got {words.size} {words.dtype}")
    K16 = -(-K4 // 4)
    padded = np.zeros((groups, 4 * K16, OCg), np.int32)
    padded[:, :K4] = words.reshape(groups, K4, OCg)
    return np.ascontiguousarray(padded.reshape(groups, K16, 4, OCg).transpose(0, 1, 3, 2)).reshape(-1)


def pack_weights_float(weight: np.ndarray, groups: int) -> np.ndarray:
    """Float GEMM weights: flat ``[G][K4][OCg]`` vec4 words (the 4 k of one output channel)."""
    return _k_words(weight_matrix(weight, groups)).reshape(-1)


# --- GEMM output <-> NCHW ------------------------------------------------------------------------


def matrix_to_nchw(y: np.ndarray, N: int, Ho: int, Wo: int) -> np.ndarray:
    """(G, M, OCg) GEMM rows/columns -> (N, G*OCg, Ho, Wo)."""
    g, m, ocg = y.shape
    if m != N * Ho * Wo:
        raise ValueError(f"M={m} is not N*Ho*Wo={N * Ho * Wo}")
    return y.reshape(g, N, Ho, Wo, ocg).transpose(1, 0, 4, 2, 3).reshape(N, g * ocg, Ho, Wo)


def nchw_to_matrix(y: np.ndarray, groups: int) -> np.ndarray:
    """(N, C_out, Ho, Wo) -> (G, M, OCg), the inverse of :func:`matrix_to_nchw`."""
    n, c_out, ho, wo = y.shape
    ocg = c_out // groups
    return y.reshape(n, groups, ocg, ho, wo).transpose(1, 0, 3, 4, 2).reshape(groups, -1, ocg)
