"""GLSL type names -> byte layouts: push-constant / spec-constant packing and
buffer dtype validation, driven only by the manifest's type strings."""

from __future__ import annotations

import numbers
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .manifest import PushConstants

# scalar name -> (struct code, numpy dtype)
_SCALARS: dict[str, tuple[str, str]] = {
    "int": ("i", "int32"),
    "uint": ("I", "uint32"),
    "float": ("f", "float32"),
    "bool": ("I", "uint32"),  # VkBool32 / SPIR-V bool in blocks is 32-bit
    "double": ("d", "float64"),
    "float16_t": ("e", "float16"),
    "float32_t": ("f", "float32"),
    "float64_t": ("d", "float64"),
    "int8_t": ("b", "int8"),
    "uint8_t": ("B", "uint8"),
    "int16_t": ("h", "int16"),
    "uint16_t": ("H", "uint16"),
    "int32_t": ("i", "int32"),
    "uint32_t": ("I", "uint32"),
    "int64_t": ("q", "int64"),
    "uint64_t": ("Q", "uint64"),
}
# vector prefix -> scalar name
_VECTORS: dict[str, str] = {
    "vec": "float",
    "ivec": "int",
    "uvec": "uint",
    "bvec": "bool",
    "dvec": "double",
    "f16vec": "float16_t",
    "f32vec": "float",
    "f64vec": "double",
    "i8vec": "int8_t",
    "u8vec": "uint8_t",
    "i16vec": "int16_t",
    "u16vec": "uint16_t",
    "i32vec": "int",
    "u32vec": "uint",
    "i64vec": "int64_t",
    "u64vec": "uint64_t",
}
_VEC_RE = re.compile(r"^([a-z0-9]*vec)([234])$")
_MAT_RE = re.compile(r"^(d|f16|f32|f64)?mat([234])(?:x([234]))?$")
_ARRAY_RE = re.compile(r"^(.*)\[(\d+)\]$")


def parse_type(name: str) -> tuple[str, int, int, int] | None:
    """Split a GLSL type into (scalar, count, group, group_stride).

    ``count`` scalars are laid out in groups of ``group`` contiguous scalars,
    each group starting ``group_stride`` bytes after the previous one (std430:
    matrix columns and vec3 array elements are padded).  None if unknown.
    """
    m = _ARRAY_RE.match(name)
    if m:
        inner = parse_type(m.group(1))
        if inner is None:
            return None
        scalar, count, group, stride = inner
        n = int(m.group(2))
        if count == group:  # scalar or vector element: one group each
            size = struct.calcsize("<" + _SCALARS[scalar][0])
            elem_stride = size * (4 if count == 3 else count)
            return scalar, count * n, count, elem_stride
        return scalar, count * n, group, stride
    if name in _SCALARS:
        return name, 1, 1, struct.calcsize("<" + _SCALARS[name][0])
    m = _VEC_RE.match(name)
    if m and m.group(1) in _VECTORS:
        scalar = _VECTORS[m.group(1)]
        n = int(m.group(2))
        return scalar, n, n, struct.calcsize("<" + _SCALARS[scalar][0]) * n
    m = _MAT_RE.match(name)
    if m:
        scalar = {"d": "double", "f64": "double", "f16": "float16_t"}.get(m.group(1) or "", "float")
        cols = int(m.group(2))
        rows = int(m.group(3) or cols)
        size = struct.calcsize("<" + _SCALARS[scalar][0])
        return scalar, cols * rows, rows, size * (4 if rows == 3 else rows)
    return None


def pack_value(type_name: str, value: Any, what: str) -> bytes:
    """Pack ``value`` as GLSL ``type_name`` (std430 layout); ``what`` names it in errors."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    parsed = parse_type(type_name)
    if parsed is None:
        raise ValueError(f"{what}: unsupported type {type_name!r} (pass raw bytes instead)")
    scalar, count, group, stride = parsed
    code = _SCALARS[scalar][0]
    if count == 1:
        if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
            flat = list(np.asarray(value).reshape(-1))
            if len(flat) != 1:
                raise ValueError(f"{what}: expected one {type_name} value, got {len(flat)}")
            value = flat[0]
        values = [value]
    else:
        if isinstance(value, str) or not isinstance(value, (Sequence, np.ndarray)):
            raise ValueError(f"{what}: expected {count} values for {type_name}, got {value!r}")
        values = list(np.asarray(value).reshape(-1))
        if len(values) != count:
            raise ValueError(f"{what}: expected {count} values for {type_name}, got {len(values)}")
    out = bytearray()
    size = struct.calcsize("<" + code)
    try:
        for start in range(0, count, group):
            chunk = [_coerce(code, v) for v in values[start : start + group]]
            out += struct.pack(f"<{group}{code}", *chunk)
            out += bytes(stride - group * size)
    except (struct.error, TypeError, OverflowError) as exc:
        raise ValueError(f"{what}: cannot pack {value!r} as {type_name}: {exc}") from exc
    return bytes(out)


def _coerce(code: str, v: Any) -> Any:
    # numbers only: float("1.5") / int("12") would quietly accept text
    if not isinstance(v, (numbers.Real, np.bool_)):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    if code in "efd":
        return float(v)
    if isinstance(v, (numbers.Integral, np.bool_)):
        return int(v)
    if not float(v).is_integer():
        raise TypeError(f"non-integer {v!r} for an integer type")
    return int(float(v))


def pack_push_constants(layout: PushConstants | None, values: Mapping[str, Any], size: int, variant: str) -> bytes:
    """Pack ``values`` by member name following the manifest's push-constant layout."""
    members = {m.name: m for m in (layout.members if layout else ())}
    unknown = sorted(set(values) - set(members))
    if unknown:
        raise ValueError(f"{variant}: unknown push constant member(s) {unknown}; members are {sorted(members)}")
    missing = [name for name in members if name not in values]
    if missing:
        raise ValueError(f"{variant}: missing push constant member(s) {missing}")
    data = bytearray(size)
    for name, member in members.items():
        raw = pack_value(member.type, values[name], f"{variant}: push constant {name!r}")
        limit = member.size or len(raw)
        if len(raw) > limit:
            raise ValueError(f"{variant}: push constant {name!r} packs to {len(raw)} bytes, member size is {limit}")
        offset = member.offset
        data[offset : offset + len(raw)] = raw
    return bytes(data)


def push_constant_size(layout: PushConstants | None) -> int:
    """Bytes the push-constant range must cover (multiple of 4, Vulkan's rule)."""
    if not layout:
        return 0
    end = layout.size
    for m in layout.members:
        msize = m.size
        if not msize:
            parsed = parse_type(m.type)
            msize = 0 if parsed is None else len(pack_value(m.type, [0] * parsed[1], "size probe"))
        end = max(end, m.offset + msize)
    return (end + 3) // 4 * 4


def element_dtype(element: str) -> tuple[np.dtype, int] | None:
    """numpy dtype and component count for a storage-buffer element type, None if opaque."""
    parsed = parse_type(element)
    if parsed is None:
        return None
    scalar, count, _group, _stride = parsed
    return np.dtype(_SCALARS[scalar][1]), count
