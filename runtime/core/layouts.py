"""Generic tensor layouts (int8 bytes or float elements), the BufferMetadata uniform and the GEMM matrix formats.

Tensors are logical NCHW arrays of shape (N, C, H, W): int8 for conv2d_q8, float for conv2d_float.

Layout definitions
------------------
A layout comes from a plain dict (one entry of the ``layouts`` table of variants.yaml)::

    {"packed_dim": "C", "block": 4, "outer_dim": "W", "outer_block": 4,
     "order": ["N", "H", "W", "C"], "description": "..."}

``outer_dim`` / ``outer_block`` are optional (``None`` / 1); ``description`` is ignored.
Each dim d gets a block size: ``block`` for ``packed_dim``, ``outer_block`` for
``outer_dim``, 1 otherwise. Element (n, c, h, w) then lives in

* block coordinate ``b_d = coord_d // blocksize_d``,
  blocked size ``S_d = ceil(size_d / blocksize_d)``;
* block strides (in blocks) from ``order`` (listed slowest -> fastest, the fastest has stride 1);
* ``block_index = sum_d b_d * stride_d``;
* byte offset ``block_index * (block * outer_block)
  + (coord_outer % outer_block) * block + (coord_packed % block)``.

Bytes are grouped 4 to an int32 word, little-endian: byte k of a word is element k of its
group of 4. The buffer holds ``ceil(bytes / 4)`` words. Bytes that belong to no element
(blocks running past C, W, ... and the tail of the last word) are padding: shaders must not
depend on them, which is why :meth:`Layout.pack` can fill them with garbage.

The built-in definitions reproduce the upstream layouts (C4 = ceil(C/4), W4 = ceil(W/4)):

* ``4c``: word ``((n*H + h)*W + w)*C4 + c//4``, byte ``c%4``
* ``4c1w``: word ``((n*H + h)*C4 + c//4)*W + w``, byte ``c%4``
* ``4w4c``: word ``(((n*H + h)*W4 + w//4)*C4 + c//4)*4 + w%4``, byte ``c%4``
* ``4w``: word ``((n*C + c)*H + h)*W4 + w//4``, byte ``w%4``
* ``4h4w``: word ``(((n*C + c)*H4 + h//4)*W4 + w//4)*4 + h%4``, byte ``w%4``
* ``contig``: plain int8 NCHW, byte ``((n*C + c)*H + h)*W + w``

Hashed layout
-------------
:meth:`Layout.hashed` packs a layout into one 32-bit spec constant (WHCN dim indices:
W=0, H=1, C=2, N=3):

* bits 0-15: dim order, nibble i = WHCN index of the i-th *fastest* dim
* bits 16-19: packed dim
* bits 20-23: outer packed dim (W = 0 when the layout has none, as upstream)
* bits 24-27: packed block size
* bits 28-31: outer block size (1 when none)

BufferMetadata
--------------
:func:`buffer_metadata` builds the std140 uniform block (104 bytes, all little-endian u32)::

    uvec4 sizes[2];      // offset  0: logical sizes W, H, C, N, then 1, 1, 1, 1
    uvec4 dim_order[2];  // offset 32: WHCN indices of the dims, fastest -> slowest, then 4, 5, 6, 7
    uvec4 strides[2];    // offset 64: block strides (in blocks) for W, H, C, N, then numel x 4
    uvec2 ndim_numel;    // offset 96: (4, numel), numel = padded element count (whole blocks)

Float tensors
-------------
The formula counts *elements*: for int8 an element is a byte (hence "byte offset" above), for the
float families (e.g. f_conv2d) it is one float16/float32 of a flat array of that type
(:meth:`Layout.element_offsets`, :meth:`Layout.pack_elements`). Blocks, strides, the hashed layout
and BufferMetadata are the same for both; the shaders share one ``layout_element_offset``.

The im2col + GEMM families keep their matrix formats in runtime/oplib/gemm_formats.py.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIMS = ("N", "C", "H", "W")
# Position of each dim in the logical NCHW array.
NCHW_AXIS = {"N": 0, "C": 1, "H": 2, "W": 3}
# Shaders index dims in WHCN order (dim 0 is the fastest-varying logical dim).
WHCN_INDEX = {"W": 0, "H": 1, "C": 2, "N": 3}
BLOCK_SIZES = (1, 2, 4)
METADATA_SIZE = 104

_REQUIRED_KEYS = ("packed_dim", "block", "order")
_OPTIONAL_KEYS = ("outer_dim", "outer_block", "description")

BUILTIN_LAYOUTS: dict[str, dict[str, Any]] = {
    "4c": {"packed_dim": "C", "block": 4, "order": ["N", "H", "W", "C"]},
    "4c1w": {"packed_dim": "C", "block": 4, "order": ["N", "H", "C", "W"]},
    "4w4c": {
        "packed_dim": "C",
        "block": 4,
        "outer_dim": "W",
        "outer_block": 4,
        "order": ["N", "H", "W", "C"],
    },
    "4w": {"packed_dim": "W", "block": 4, "order": ["N", "C", "H", "W"]},
    "4h4w": {
        "packed_dim": "W",
        "block": 4,
        "outer_dim": "H",
        "outer_block": 4,
        "order": ["N", "C", "H", "W"],
    },
    "contig": {"packed_dim": "W", "block": 1, "order": ["N", "C", "H", "W"]},
}


def _is_int(v: object) -> bool:
    # bool is an int subclass, but `block: true` in YAML is a mistake, not 1.
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(shape)
    if len(shape) != 4 or not all(_is_int(s) and s >= 1 for s in shape):
        raise ValueError(f"shape must be 4 positive ints (N, C, H, W), got {shape!r}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Layout:
    """One blocked int8 layout; see the module docstring for the offset formula."""

    name: str
    packed_dim: str
    block: int
    outer_dim: str | None
    outer_block: int
    order: tuple[str, ...]
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"layout {self.name!r}"
        if self.packed_dim not in DIMS:
            raise ValueError(f"{where}: packed_dim must be one of {DIMS}, got {self.packed_dim!r}")
        if not _is_int(self.block) or self.block not in BLOCK_SIZES:
            raise ValueError(f"{where}: block must be one of {BLOCK_SIZES}, got {self.block!r}")
        if self.outer_dim is not None:
            if self.outer_dim not in DIMS:
                raise ValueError(f"{where}: outer_dim must be one of {DIMS} or None, got {self.outer_dim!r}")
            if self.outer_dim == self.packed_dim:
                raise ValueError(f"{where}: outer_dim must differ from packed_dim")
        if not _is_int(self.outer_block) or self.outer_block not in BLOCK_SIZES:
            raise ValueError(f"{where}: outer_block must be one of {BLOCK_SIZES}, got {self.outer_block!r}")
        if self.outer_dim is None and self.outer_block != 1:
            raise ValueError(f"{where}: outer_block {self.outer_block} needs an outer_dim")
        if (
            not isinstance(self.order, tuple)
            or not all(isinstance(d, str) for d in self.order)
            or sorted(self.order) != sorted(DIMS)
        ):
            raise ValueError(f"{where}: order must be a permutation of N, C, H, W, got {self.order!r}")

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Layout:
        """Build and validate a layout from its YAML definition."""
        # ValueError even for wrong types: callers treat any bad definition as bad config.
        if not isinstance(d, Mapping):
            raise ValueError(f"layout {name!r}: definition must be a mapping, got {d!r}")
        for key in _REQUIRED_KEYS:
            if key not in d:
                raise ValueError(f"layout {name!r}: missing key {key!r}")
        for key in d:
            if key not in _REQUIRED_KEYS + _OPTIONAL_KEYS:
                raise ValueError(f"layout {name!r}: unknown key {key!r}")
        order = d["order"]
        if isinstance(order, str) or not isinstance(order, Sequence):
            raise ValueError(f"layout {name!r}: order must be a list of dims, got {order!r}")
        outer_block = d.get("outer_block", 1)
        return cls(
            name=name,
            packed_dim=d["packed_dim"],
            block=int(d["block"]) if _is_int(d["block"]) else d["block"],
            outer_dim=d.get("outer_dim"),
            outer_block=int(outer_block) if _is_int(outer_block) else outer_block,
            order=tuple(order),
            description=str(d.get("description", "") or ""),
        )

    # --- geometry -------------------------------------------------------------------------

    @property
    def block_bytes(self) -> int:
        """Bytes in one block."""
        return self.block * self.outer_block

    def block_sizes(self) -> dict[str, int]:
        """Block size of each dim (1 for dims that are not blocked)."""
        sizes = dict.fromkeys(DIMS, 1)
        sizes[self.packed_dim] = self.block
        if self.outer_dim is not None:
            sizes[self.outer_dim] = self.outer_block
        return sizes

    def blocked_sizes(self, shape: Sequence[int]) -> dict[str, int]:
        """Number of blocks along each dim for a logical NCHW shape."""
        shape = _check_shape(shape)
        bs = self.block_sizes()
        return {d: _ceil_div(shape[NCHW_AXIS[d]], bs[d]) for d in DIMS}

    def block_strides(self, shape: Sequence[int]) -> dict[str, int]:
        """Stride of each dim, in blocks."""
        blocked = self.blocked_sizes(shape)
        strides: dict[str, int] = {}
        stride = 1
        for d in reversed(self.order):
            strides[d] = stride
            stride *= blocked[d]
        return strides

    def strides_whcn(self, shape: Sequence[int]) -> tuple[int, int, int, int]:
        """Block strides in WHCN order (W, H, C, N)."""
        s = self.block_strides(shape)
        return (s["W"], s["H"], s["C"], s["N"])

    def slots(self, shape: Sequence[int]) -> int:
        """Element slots covered by the blocks, padding included."""
        blocked = self.blocked_sizes(shape)
        n_blocks = int(np.prod([blocked[d] for d in DIMS]))
        return n_blocks * self.block_bytes

    def nbytes(self, shape: Sequence[int]) -> int:
        """Bytes covered by the blocks of an int8 tensor (before rounding up to whole words)."""
        return self.slots(shape)

    def words(self, shape: Sequence[int]) -> int:
        """Number of int32 words in the packed buffer."""
        return _ceil_div(self.nbytes(shape), 4)

    def byte_offsets(self, shape: Sequence[int]) -> np.ndarray:
        """Byte offset of every element of an int8 tensor (its elements are bytes)."""
        return self.element_offsets(shape)

    def element_offsets(self, shape: Sequence[int]) -> np.ndarray:
        """Offset of every element in elements of the data type, as an int64 array of the logical shape."""
        shape = _check_shape(shape)
        bs = self.block_sizes()
        strides = self.block_strides(shape)
        # sparse=True keeps one broadcastable index vector per axis instead of 4 full arrays.
        idx = np.indices(shape, dtype=np.int64, sparse=True)
        off = np.zeros(shape, dtype=np.int64)
        for d in DIMS:
            off += (idx[NCHW_AXIS[d]] // bs[d]) * strides[d]
        off *= self.block_bytes
        if self.outer_dim is not None:
            off += (idx[NCHW_AXIS[self.outer_dim]] % self.outer_block) * self.block
        off += idx[NCHW_AXIS[self.packed_dim]] % self.block
        return off

    # --- packing --------------------------------------------------------------------------

    def pack(
        self,
        x: np.ndarray,
        pad_value: int | None = 0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Pack an int8 NCHW tensor into int32 words.

        Padding bytes get ``pad_value``; with ``pad_value=None`` they get garbage, random
        from ``rng`` when given, else a fixed non-zero pattern.
        """
        x = as_int8(x, "x")
        if x.ndim != 4:
            raise ValueError(f"layout {self.name!r}: x must be 4-D NCHW, got shape {x.shape}")
        buf = _padding_bytes(self.words(x.shape) * 4, pad_value, rng)
        buf[self.byte_offsets(x.shape).ravel()] = np.ascontiguousarray(x).view(np.uint8).ravel()
        return _bytes_to_words(buf)

    def unpack(self, words: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Inverse of :meth:`pack`: int32 words -> int8 NCHW tensor of ``shape``."""
        shape = _check_shape(shape)
        buf = _words_to_bytes(words)
        need = self.words(shape) * 4
        if buf.size < need:
            raise ValueError(f"layout {self.name!r}: buffer has {buf.size // 4} words, shape {shape} needs {need // 4}")
        return buf[self.byte_offsets(shape)].view(np.int8)

    def pack_elements(
        self, x: np.ndarray, pad_value: float | None = 0.0, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Lay a float NCHW tensor out as a flat array of its own dtype, by element offset.

        The array is rounded up to whole groups of 4 elements (a vec4 binding covers it). Padding
        slots get ``pad_value``; with ``None`` they get NaN, infinities and huge values (random from
        ``rng`` when given), which poison any result that reads them.
        """
        x = np.asarray(x)
        if x.dtype.kind != "f" or x.ndim != 4:
            raise ValueError(f"layout {self.name!r}: x must be a 4-D float NCHW array, got {x.dtype} {x.shape}")
        n = _ceil_div(self.slots(x.shape), 4) * 4
        buf = _float_padding(n, x.dtype, pad_value, rng)
        buf[self.element_offsets(x.shape).ravel()] = x.ravel()
        return buf

    def unpack_elements(self, buf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Inverse of :meth:`pack_elements`: flat float array -> NCHW tensor of ``shape``."""
        shape = _check_shape(shape)
        buf = np.asarray(buf)
        if buf.ndim != 1 or buf.size < self.slots(shape):
            raise ValueError(
                f"layout {self.name!r}: buffer of shape {buf.shape} is not a flat array of at least "
                f"{self.slots(shape)} elements for shape {shape}"
            )
        return buf[self.element_offsets(shape)]

    # --- shader-facing encodings ----------------------------------------------------------

    def hashed(self) -> int:
        """The hashed-layout spec constant as an unsigned 32-bit value."""
        value = 0
        for i, d in enumerate(reversed(self.order)):
            value |= WHCN_INDEX[d] << (4 * i)
        # upstream puts W (0) in the outer nibble of a layout without an outer block; the shaders
        # read it only together with OUTER_BLOCK = 1, so any dim gives the same offsets
        outer = self.outer_dim if self.outer_dim is not None else "W"
        value |= WHCN_INDEX[self.packed_dim] << 16
        value |= WHCN_INDEX[outer] << 20
        value |= self.block << 24
        value |= self.outer_block << 28
        return value

    def hashed_i32(self) -> int:
        """:meth:`hashed` as a two's complement signed int32 (spec constants are int)."""
        value = self.hashed()
        return value - (1 << 32) if value >= (1 << 31) else value


def builtin_layout(name: str) -> Layout:
    """A :class:`Layout` from :data:`BUILTIN_LAYOUTS`."""
    if name not in BUILTIN_LAYOUTS:
        raise ValueError(f"unknown built-in layout {name!r}; known: {sorted(BUILTIN_LAYOUTS)}")
    return Layout.from_dict(name, BUILTIN_LAYOUTS[name])


def buffer_metadata(layout: Layout, shape: Sequence[int]) -> bytes:
    """The std140 BufferMetadata uniform (104 bytes) for ``layout`` and NCHW ``shape``, byte for byte
    what upstream fills: the 4 used entries of each array in WHCN order, then unused `sizes` 1,
    unused `dim_order` their own index, unused `strides` the padded element count; `ndim_numel` =
    (4, padded element count), padding being the layout's blocks (:meth:`Layout.slots`)."""
    n, c, h, w = _check_shape(shape)
    numel = layout.slots((n, c, h, w))
    if numel >= 1 << 32:
        raise ValueError(f"shape {shape} has {numel} padded elements, more than a uint can count")
    sizes = (w, h, c, n, 1, 1, 1, 1)
    dim_order = (*(WHCN_INDEX[d] for d in reversed(layout.order)), 4, 5, 6, 7)
    strides = (*layout.strides_whcn(shape), numel, numel, numel, numel)
    data = struct.pack("<8I8I8I2I", *sizes, *dim_order, *strides, 4, numel)
    assert len(data) == METADATA_SIZE
    return data


# --- byte helpers -------------------------------------------------------------------------


def as_int8(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.int8:
        return x
    if x.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {x.dtype}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"{name} has values outside the int8 range")
    return x.astype(np.int8)


def _padding_bytes(n: int, pad_value: int | None, rng: np.random.Generator | None) -> np.ndarray:
    if pad_value is None:
        if rng is not None:
            return rng.integers(0, 256, size=n, dtype=np.uint8)
        # A fixed pattern that is never 0 and varies byte to byte, so reading padding shows.
        return ((np.arange(n, dtype=np.int64) * 37 + 0xA5) % 255 + 1).astype(np.uint8)
    if not _is_int(pad_value) or not -128 <= pad_value <= 127:
        raise ValueError(f"pad_value must be an int8 value or None, got {pad_value!r}")
    return np.full(n, np.int8(pad_value).view(np.uint8), dtype=np.uint8)


def _bytes_to_words(buf: np.ndarray) -> np.ndarray:
    return buf.view("<i4").astype(np.int32)


def _words_to_bytes(words: np.ndarray) -> np.ndarray:
    words = np.asarray(words)
    if words.ndim != 1 or words.dtype.kind not in "iu" or words.dtype.itemsize != 4:
        raise ValueError(f"words must be a 1-D int32/uint32 array, got {words.dtype} shape {words.shape}")
    return np.ascontiguousarray(words, dtype=words.dtype.newbyteorder("<")).view(np.uint8)


def _float_padding(n: int, dtype: np.dtype, pad_value: float | None, rng: np.random.Generator | None) -> np.ndarray:
    if pad_value is not None:
        return np.full(n, pad_value, dtype=dtype)
    info = np.finfo(dtype)
    poison = np.array([np.nan, np.inf, -np.inf, info.max, -info.max], dtype=dtype)
    if rng is not None:
        return rng.choice(poison, size=n)
    return np.resize(poison, n)
