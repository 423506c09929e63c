"""Tensors in a layout: :func:`pack`, :func:`unpack` and :class:`Packed`, the handle ops accept.

A logical tensor is an NCHW NumPy array. Packed in a layout of variants.yaml (runtime/core/layouts.py
has the formula) it becomes the flat buffer shaders read: int32 words for int8 data (4 bytes a
word, little-endian), a flat array of the element type for float data. A :class:`Packed` keeps
that buffer together with its layout, logical shape and element type, either in host memory (a
NumPy array) or on a device (a :class:`~runtime.core.buffers.Buffer`), so data can stay packed
between ops instead of going through NCHW on the host each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .buffers import Buffer
from .device import Device, default_device
from .layouts import Layout
from .manifest import load_manifest

ELEMENT_DTYPES = ("int8", "float16", "float32")


@dataclass(frozen=True)
class Packed:
    """A tensor packed in `layout`: `data` is int32 words (int8) or flat elements (float), on the
    host (np.ndarray) or on a device (Buffer). `shape` is the logical (N, C, H, W)."""

    data: np.ndarray | Buffer
    layout: Layout
    shape: tuple[int, int, int, int]
    dtype: np.dtype

    @property
    def on_device(self) -> bool:
        return isinstance(self.data, Buffer)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def numpy(self) -> np.ndarray:
        """The logical NCHW array (read back from the device if the data lives there)."""
        return unpack(self)

    def to_device(self, device: Device | None = None) -> Packed:
        """The same tensor with its data uploaded to `device` (default: the default device)."""
        dev = device or default_device()
        if isinstance(self.data, Buffer):
            if self.data._ctx is dev._live():
                return self
            raise ValueError("this Packed tensor lives on another device; unpack it and pack it again")
        return Packed(dev.upload(self.data), self.layout, self.shape, self.dtype)

    def host_words(self) -> np.ndarray:
        """The packed buffer as a host array (int32 words or float elements)."""
        if isinstance(self.data, Buffer):
            return self.data.read(np.int32 if self.dtype == np.int8 else self.dtype)
        return self.data


def layout_named(name: Any) -> Layout:
    """The layout `name` of the build's variants file (or a Layout, returned as is)."""
    if isinstance(name, Layout):
        return name
    layouts = load_manifest().layouts
    if not isinstance(name, str) or name not in layouts:
        raise ValueError(f"layout must be one of {sorted(layouts)} (the layouts of variants.yaml), got {name!r}")
    return Layout.from_dict(name, layouts[name])


def _logical(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array (logical NCHW), got {type(x).__name__}")
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty 4-D NCHW array, got shape {x.shape}")
    if x.dtype.name not in ELEMENT_DTYPES:
        raise TypeError(f"x must have dtype int8, float16 or float32, got {x.dtype}")
    return x


def pack(x: np.ndarray, layout: str | Layout, *, pad: Any = 0) -> Packed:
    """Pack the logical NCHW array `x` (int8, float16 or float32) in `layout` (a name from
    variants.yaml's `layouts:`). Padding slots get `pad` (0 by default)."""
    x = _logical(x)
    lay = layout_named(layout)
    data = lay.pack(x, pad_value=int(pad)) if x.dtype == np.int8 else lay.pack_elements(x, pad_value=float(pad))
    return Packed(data, lay, (int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(x.shape[3])), x.dtype)


def unpack(
    buf: Packed | np.ndarray | Buffer,
    layout: str | Layout | None = None,
    shape: Sequence[int] | None = None,
    *,
    dtype: Any = "int8",
) -> np.ndarray:
    """The logical NCHW array of a packed buffer.

    `buf` is a :class:`Packed` (layout and shape come with it; if given they must agree), or raw
    data: int32 words for int8 (`dtype="int8"`, the default) or a flat float array, as a NumPy
    array or a device Buffer, with `layout` and `shape` saying how it is packed.
    """
    if isinstance(buf, Packed):
        if layout is not None and layout_named(layout) != buf.layout:
            raise ValueError(f"layout={layout!r} does not match the packed tensor's layout {buf.layout.name!r}")
        if shape is not None and tuple(shape) != buf.shape:
            raise ValueError(f"shape={tuple(shape)} does not match the packed tensor's shape {buf.shape}")
        lay, shp, dt, data = buf.layout, tuple(buf.shape), buf.dtype, buf.host_words()
    else:
        if layout is None or shape is None:
            raise ValueError("unpack of a raw buffer needs layout= and shape= (N, C, H, W)")
        dt = np.dtype(dtype)
        if dt.name not in ELEMENT_DTYPES:
            raise ValueError(f"dtype must be one of {ELEMENT_DTYPES}, got {dtype!r}")
        lay, shp = layout_named(layout), tuple(int(s) for s in shape)
        if isinstance(buf, Buffer):
            data = buf.read(np.int32 if dt == np.int8 else dt)
        elif isinstance(buf, np.ndarray):
            data = buf
        else:
            raise TypeError(f"buf must be a Packed, a numpy array or a Buffer, got {type(buf).__name__}")
    if dt == np.int8:
        return lay.unpack(np.asarray(data).reshape(-1), shp)
    return lay.unpack_elements(np.asarray(data, dtype=dt).reshape(-1), shp)
