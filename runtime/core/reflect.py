"""Reflection of a compute SPIR-V module in pure Python: bindings, push constants, spec constants,
local size and the device features its capabilities need.

This is what lets the runtime run a shader shaderkit did not generate (:func:`load_shader`): no
spirv-cross at run time, and spec constants are known by id even when the module's names were
stripped. Names that survive (OpName / OpMemberName) are used; a stripped module gets
``binding<N>`` for bindings, ``member<I>`` for push-constant members and ``""`` for spec constants
(set those by id).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ShaderkitError
from .manifest import Binding, PushConstants, PushMember, SpecConstant, VariantEntry

MAGIC = 0x07230203
# opcodes
OP_NAME, OP_MEMBER_NAME, OP_ENTRY_POINT, OP_EXECUTION_MODE, OP_CAPABILITY = 5, 6, 15, 16, 17
OP_TYPE_BOOL, OP_TYPE_INT, OP_TYPE_FLOAT, OP_TYPE_VECTOR, OP_TYPE_MATRIX = 20, 21, 22, 23, 24
OP_TYPE_ARRAY, OP_TYPE_RUNTIME_ARRAY, OP_TYPE_STRUCT, OP_TYPE_POINTER = 28, 29, 30, 32
OP_CONSTANT_TRUE, OP_CONSTANT_FALSE, OP_CONSTANT, OP_CONSTANT_COMPOSITE = 41, 42, 43, 44
OP_SPEC_TRUE, OP_SPEC_FALSE, OP_SPEC_CONSTANT, OP_SPEC_COMPOSITE = 48, 49, 50, 51
OP_VARIABLE, OP_DECORATE, OP_MEMBER_DECORATE = 59, 71, 72
OP_EXECUTION_MODE_ID = 331
# decorations
DEC_SPEC_ID, DEC_BLOCK, DEC_BUFFER_BLOCK, DEC_ARRAY_STRIDE, DEC_MATRIX_STRIDE = 1, 2, 3, 6, 7
DEC_BUILTIN, DEC_NON_WRITABLE, DEC_NON_READABLE, DEC_BINDING, DEC_SET, DEC_OFFSET = 11, 24, 25, 33, 34, 35
BUILTIN_WORKGROUP_SIZE = 25
# storage classes
SC_UNIFORM, SC_PUSH_CONSTANT, SC_STORAGE_BUFFER = 2, 9, 12
MODE_LOCAL_SIZE, MODE_LOCAL_SIZE_ID = 17, 38
EXEC_GL_COMPUTE = 5

# SPIR-V capability -> the Vulkan feature a device must enable for it
CAPABILITY_FEATURES = {
    9: "shaderFloat16",
    11: "shaderInt64",
    22: "shaderInt16",
    39: "shaderInt8",
    4433: "storageBuffer16BitAccess",
    4448: "storageBuffer8BitAccess",
    5345: "vulkanMemoryModel",
    5357: "cooperativeMatrixNV",
    6018: "shaderIntegerDotProduct",
    6019: "shaderIntegerDotProduct",
    6022: "cooperativeMatrix",
}
_INT_NAMES = {(8, 1): "int8_t", (8, 0): "uint8_t", (16, 1): "int16_t", (16, 0): "uint16_t", (32, 1): "int",
              (32, 0): "uint", (64, 1): "int64_t", (64, 0): "uint64_t"}
_FLOAT_NAMES = {16: "float16_t", 32: "float", 64: "double"}
_VEC_PREFIX = {"int8_t": "i8vec", "uint8_t": "u8vec", "int16_t": "i16vec", "uint16_t": "u16vec", "int": "ivec",
               "uint": "uvec", "int64_t": "i64vec", "uint64_t": "u64vec", "float16_t": "f16vec", "float": "vec",
               "double": "dvec", "bool": "bvec"}


class ReflectionError(ShaderkitError, ValueError):
    """The file is not a compute SPIR-V module this runtime can run (the message says why)."""


@dataclass
class _Module:
    words: tuple[int, ...]
    names: dict[int, str] = field(default_factory=dict)
    member_names: dict[tuple[int, int], str] = field(default_factory=dict)
    decorations: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    member_decorations: dict[tuple[int, int], dict[int, list[int]]] = field(default_factory=dict)
    types: dict[int, tuple[int, list[int]]] = field(default_factory=dict)  # id -> (opcode, operands)
    constants: dict[int, tuple[int, int, list[int]]] = field(default_factory=dict)  # id -> (opcode, type, operands)
    variables: list[tuple[int, int, int]] = field(default_factory=list)  # (pointer type, id, storage class)
    capabilities: list[int] = field(default_factory=list)
    entry_points: list[tuple[int, int, str]] = field(default_factory=list)  # (model, id, name)
    modes: dict[int, tuple[int, list[int]]] = field(default_factory=dict)  # entry id -> (mode, operands)


def _string(words: tuple[int, ...], start: int) -> tuple[str, int]:
    """A nul-terminated UTF-8 literal starting at word `start`; returns it and the next word index."""
    raw = bytearray()
    i = start
    while i < len(words):
        chunk = struct.pack("<I", words[i])
        i += 1
        if 0 in chunk:
            raw += chunk[: chunk.index(0)]
            return raw.decode("utf-8", "replace"), i
        raw += chunk
    raise ReflectionError("malformed SPIR-V: unterminated string literal")


def _parse(spirv: bytes, where: str) -> _Module:
    if len(spirv) < 20 or len(spirv) % 4:
        raise ReflectionError(f"{where}: not a SPIR-V module ({len(spirv)} bytes, not a multiple of 4 >= 20)")
    words = struct.unpack(f"<{len(spirv) // 4}I", spirv)
    if words[0] != MAGIC:
        if struct.unpack(">I", spirv[:4])[0] == MAGIC:
            words = struct.unpack(f">{len(spirv) // 4}I", spirv)
        else:
            raise ReflectionError(f"{where}: not a SPIR-V module (magic number {words[0]:#010x})")
    m = _Module(words)
    i = 5
    while i < len(words):
        count, op = words[i] >> 16, words[i] & 0xFFFF
        if count == 0 or i + count > len(words):
            raise ReflectionError(f"{where}: malformed SPIR-V instruction at word {i}")
        ops = list(words[i + 1 : i + count])
        if op == OP_NAME:
            m.names[ops[0]] = _string(words, i + 2)[0]
        elif op == OP_MEMBER_NAME:
            m.member_names[(ops[0], ops[1])] = _string(words, i + 3)[0]
        elif op == OP_CAPABILITY:
            m.capabilities.append(ops[0])
        elif op == OP_ENTRY_POINT:
            m.entry_points.append((ops[0], ops[1], _string(words, i + 3)[0]))
        elif op in (OP_EXECUTION_MODE, OP_EXECUTION_MODE_ID) and ops[1] in (MODE_LOCAL_SIZE, MODE_LOCAL_SIZE_ID):
            m.modes[ops[0]] = (ops[1], ops[2:5])
        elif op == OP_DECORATE:
            m.decorations.setdefault(ops[0], {})[ops[1]] = ops[2:]
        elif op == OP_MEMBER_DECORATE:
            m.member_decorations.setdefault((ops[0], ops[1]), {})[ops[2]] = ops[3:]
        elif op in (OP_TYPE_BOOL, OP_TYPE_INT, OP_TYPE_FLOAT, OP_TYPE_VECTOR, OP_TYPE_MATRIX, OP_TYPE_ARRAY,
                    OP_TYPE_RUNTIME_ARRAY, OP_TYPE_STRUCT, OP_TYPE_POINTER):
            m.types[ops[0]] = (op, ops[1:])
        elif op in (OP_CONSTANT_TRUE, OP_CONSTANT_FALSE, OP_CONSTANT, OP_CONSTANT_COMPOSITE, OP_SPEC_TRUE,
                    OP_SPEC_FALSE, OP_SPEC_CONSTANT, OP_SPEC_COMPOSITE):
            m.constants[ops[1]] = (op, ops[0], ops[2:])
        elif op == OP_VARIABLE:
            m.variables.append((ops[0], ops[1], ops[2]))
        i += count
    return m


class _Types:
    """GLSL-style names, std430/std140 sizes and constant values of a module's types."""

    def __init__(self, m: _Module) -> None:
        self.m = m

    def scalar(self, tid: int) -> tuple[str, int]:
        op, ops = self.m.types[tid]
        if op == OP_TYPE_INT:
            return _INT_NAMES.get((ops[0], ops[1]), f"int{ops[0]}"), ops[0] // 8
        if op == OP_TYPE_FLOAT:
            return _FLOAT_NAMES.get(ops[0], f"float{ops[0]}"), ops[0] // 8
        if op == OP_TYPE_BOOL:
            return "bool", 4
        raise ReflectionError(f"type %{tid} is not a scalar")

    def name(self, tid: int) -> str:
        op, ops = self.m.types[tid]
        if op in (OP_TYPE_INT, OP_TYPE_FLOAT, OP_TYPE_BOOL):
            return self.scalar(tid)[0]
        if op == OP_TYPE_VECTOR:
            scalar = self.scalar(ops[0])[0]
            return f"{_VEC_PREFIX.get(scalar, scalar + 'vec')}{ops[1]}"
        if op == OP_TYPE_MATRIX:
            _, col = self.m.types[ops[0]]
            scalar = self.scalar(col[0])[0]
            prefix = {"float": "", "double": "d", "float16_t": "f16"}.get(scalar, scalar)
            return f"{prefix}mat{ops[1]}" + ("" if ops[1] == col[1] else f"x{col[1]}")
        if op == OP_TYPE_ARRAY:
            return f"{self.name(ops[0])}[{self.constant(ops[1])}]"
        if op == OP_TYPE_RUNTIME_ARRAY:
            return f"{self.name(ops[0])}[]"
        if op == OP_TYPE_STRUCT:
            return self.m.names.get(tid, f"struct{tid}")
        return f"type{tid}"

    def size(self, tid: int) -> int:
        """Bytes a value of the type occupies inside a block (runtime arrays count 0)."""
        op, ops = self.m.types[tid]
        if op in (OP_TYPE_INT, OP_TYPE_FLOAT, OP_TYPE_BOOL):
            return self.scalar(tid)[1]
        if op == OP_TYPE_VECTOR:
            return self.scalar(ops[0])[1] * ops[1]
        if op == OP_TYPE_MATRIX:
            stride = next((d[DEC_MATRIX_STRIDE][0] for d in self._member_decs_of(tid) if DEC_MATRIX_STRIDE in d),
                          None)
            return ops[1] * (stride or self.size(ops[0]))
        if op == OP_TYPE_ARRAY:
            stride = self.m.decorations.get(tid, {}).get(DEC_ARRAY_STRIDE, [self.size(ops[0])])[0]
            return int(stride) * int(self.constant(ops[1]))
        if op == OP_TYPE_RUNTIME_ARRAY:
            return 0
        if op == OP_TYPE_STRUCT:
            return max((self.offset(tid, i) + self.size(t) for i, t in enumerate(ops)), default=0)
        return 0

    def _member_decs_of(self, tid: int) -> list[dict[int, list[int]]]:
        return [d for (sid, _), d in self.m.member_decorations.items() if tid in self.m.types.get(sid, (0, []))[1]]

    def offset(self, struct_id: int, index: int) -> int:
        return int(self.m.member_decorations.get((struct_id, index), {}).get(DEC_OFFSET, [0])[0])

    def constant(self, cid: int) -> Any:
        op, tid, ops = self.m.constants[cid]
        if op in (OP_CONSTANT_TRUE, OP_SPEC_TRUE):
            return True
        if op in (OP_CONSTANT_FALSE, OP_SPEC_FALSE):
            return False
        if op in (OP_CONSTANT_COMPOSITE, OP_SPEC_COMPOSITE):
            return [self.constant(c) for c in ops]
        name, size = self.scalar(tid)
        raw = struct.pack("<" + "I" * len(ops), *ops)
        if name.startswith("float") or name == "double":
            code = {2: "e", 4: "f", 8: "d"}[size]
            return struct.unpack("<" + code, raw[:size])[0]
        signed = not name.startswith("u")
        return int.from_bytes(raw[:size], "little", signed=signed)


def reflect_spirv(spirv: bytes, *, name: str, spv_path: Path, where: str = "") -> VariantEntry:
    """A :class:`VariantEntry` describing `spirv` (whose bytes live at `spv_path`)."""
    where = where or str(spv_path)
    m = _parse(spirv, where)
    t = _Types(m)
    compute = [e for e in m.entry_points if e[0] == EXEC_GL_COMPUTE]
    if len(compute) != 1:
        raise ReflectionError(f"{where}: expected one GLCompute entry point, found {len(compute)}")
    _, entry_id, entry_name = compute[0]

    bindings = []
    push = None
    for ptr_type, var_id, storage in m.variables:
        if storage not in (SC_UNIFORM, SC_STORAGE_BUFFER, SC_PUSH_CONSTANT):
            continue
        pointee = m.types[ptr_type][1][1]
        if m.types.get(pointee, (0, []))[0] != OP_TYPE_STRUCT:
            raise ReflectionError(f"{where}: interface variable %{var_id} is not a block")
        members = m.types[pointee][1]
        if storage == SC_PUSH_CONSTANT:
            push = PushConstants(t.size(pointee), tuple(
                PushMember(m.member_names.get((pointee, i)) or f"member{i}", t.offset(pointee, i), t.name(mt),
                           t.size(mt))
                for i, mt in enumerate(members)))
            continue
        decs = m.decorations.get(var_id, {})
        if DEC_BINDING not in decs:
            raise ReflectionError(f"{where}: buffer %{var_id} has no binding decoration")
        storage_buffer = storage == SC_STORAGE_BUFFER or DEC_BUFFER_BLOCK in m.decorations.get(pointee, {})
        last = members[-1] if members else 0
        runtime_array = storage_buffer and m.types.get(last, (0, []))[0] == OP_TYPE_RUNTIME_ARRAY
        elem = m.types[last][1][0] if runtime_array else 0
        number = decs[DEC_BINDING][0]
        if runtime_array and len(members) == 1:
            label = m.member_names.get((pointee, 0)) or m.names.get(pointee) or m.names.get(var_id)
        else:
            label = m.names.get(pointee) or m.names.get(var_id)
        bindings.append(Binding(
            set=decs.get(DEC_SET, [0])[0],
            binding=number,
            name=label or f"binding{number}",
            kind="storage_buffer" if storage_buffer else "uniform_buffer",
            access=_access(m, var_id, pointee, len(members)) if storage_buffer else "read",
            element=t.name(elem) if runtime_array else "block",
            element_size=int(m.decorations.get(last, {}).get(DEC_ARRAY_STRIDE, [0])[0]) if runtime_array else 0,
            block_size=t.offset(pointee, len(members) - 1) if runtime_array else t.size(pointee),
        ))

    specs = []
    for cid, (op, tid, _) in m.constants.items():
        spec_id = m.decorations.get(cid, {}).get(DEC_SPEC_ID)
        if op in (OP_SPEC_TRUE, OP_SPEC_FALSE, OP_SPEC_CONSTANT) and spec_id:
            specs.append(SpecConstant(spec_id[0], m.names.get(cid, ""), t.name(tid), t.constant(cid)))
    local, local_ids = _local_size(m, t, entry_id, where)
    features = sorted({CAPABILITY_FEATURES[c] for c in m.capabilities if c in CAPABILITY_FEATURES})
    return VariantEntry(
        name=name, family="external", role="external", spv_path=spv_path,
        sha256=hashlib.sha256(spirv).hexdigest(),
        bindings=tuple(sorted(bindings, key=lambda b: (b.set, b.binding))),
        push_constants=push,
        spec_constants=tuple(sorted(specs, key=lambda s: s.id)),
        local_size=local, local_size_spec_ids=local_ids, entry_point=entry_name, features=tuple(features),
    )


def _access(m: _Module, var_id: int, struct_id: int, count: int) -> str:
    decs = m.decorations.get(var_id, {})
    members = [m.member_decorations.get((struct_id, i), {}) for i in range(count)]
    readonly = DEC_NON_WRITABLE in decs or all(DEC_NON_WRITABLE in d for d in members)
    writeonly = DEC_NON_READABLE in decs or all(DEC_NON_READABLE in d for d in members)
    return "read" if readonly else "write" if writeonly else "read_write"


def _local_size(m: _Module, t: _Types, entry_id: int, where: str) -> tuple[
        tuple[int, int, int], tuple[int | None, int | None, int | None]]:
    """(local size with 0 on spec-constant axes, spec ids of those axes): the codegen's convention."""
    builtin = next((cid for cid, d in m.decorations.items()
                    if d.get(DEC_BUILTIN, [None])[0] == BUILTIN_WORKGROUP_SIZE and cid in m.constants), None)
    ids: list[int | None] = [None, None, None]
    sizes = [1, 1, 1]
    if builtin is not None:
        parts = m.constants[builtin][2]
        for axis, cid in enumerate(parts[:3]):
            spec = m.decorations.get(cid, {}).get(DEC_SPEC_ID)
            ids[axis] = spec[0] if spec else None
            sizes[axis] = 0 if spec else int(t.constant(cid))
    elif entry_id in m.modes:
        mode, ops = m.modes[entry_id]
        if mode == MODE_LOCAL_SIZE:
            sizes = [int(v) for v in ops]
        else:
            for axis, cid in enumerate(ops):
                spec = m.decorations.get(cid, {}).get(DEC_SPEC_ID)
                ids[axis] = spec[0] if spec else None
                sizes[axis] = 0 if spec else int(t.constant(cid))
    else:
        raise ReflectionError(f"{where}: the entry point declares no local size")
    return (sizes[0], sizes[1], sizes[2]), (ids[0], ids[1], ids[2])


def load_shader(path: str | Path, *, name: str | None = None) -> VariantEntry:
    """A shader shaderkit did not generate, ready for :func:`runtime.run_variant`.

    `path` is a SPIR-V binary (``.spv``) or GLSL compute source (``.comp``, ``.glsl``; compiled with
    glslc for Vulkan 1.2 into a temporary folder that lives as long as the process). Bindings,
    push constants, spec constants (by id, and by name where names survive) and the local size
    come from the module itself.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"load_shader: cannot read {p}: {exc.strerror}") from None
    if p.suffix in (".comp", ".glsl"):
        spv = _compile(p)
        data = spv.read_bytes()
    else:
        spv = p
    return reflect_spirv(data, name=name or p.stem, spv_path=spv.resolve(), where=str(p))


_compiled_dir: tempfile.TemporaryDirectory[str] | None = None


def _compile(source: Path) -> Path:
    global _compiled_dir
    glslc = shutil.which("glslc")
    if glslc is None:
        raise ShaderkitError(f"load_shader: {source} is GLSL and glslc is not installed; "
                             "install it (apt-get install glslc) or pass a .spv")
    if _compiled_dir is None:
        _compiled_dir = tempfile.TemporaryDirectory(prefix="shaderkit-load-")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = Path(_compiled_dir.name) / f"{source.stem}.{digest}.spv"
    proc = subprocess.run([glslc, "-fshader-stage=compute", "--target-env=vulkan1.2", str(source), "-o", str(out)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"load_shader: glslc rejected {source}:\n{(proc.stderr + proc.stdout).strip()}")
    return out
