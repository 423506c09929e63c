"""Compile rendered GLSL with glslc, validate with spirv-val and reflect with spirv-cross."""

from __future__ import annotations

import json
import re
import shutil
import signal
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.errors import CompileError
from codegen.render import Rendered
from codegen.toolchain import INSTALL_HINT, OPTIMIZE_FLAG, TARGET_ENV, TOOLS, glslc_flags

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
_SCALAR_SIZES = {"int": 4, "uint": 4, "float": 4, "bool": 4, "double": 8, "int64_t": 8, "uint64_t": 8}
_DIAG_RE = re.compile(r"^(?P<file>[^:\n]+\.comp):(?P<line>\d+): (?P<rest>.*)$")


def check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise CompileError(f"missing tools: {', '.join(missing)}; install them with: {INSTALL_HINT}")


def compiler_identity(optimize: bool = False) -> str:
    """Version text of the toolchain and the flags; part of every cache key."""
    check_tools()
    out = subprocess.run(["glslc", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() + " | " + " ".join(glslc_flags(optimize))


class Cancelled(Exception):
    """A tool was stopped (the build was cancelled, or a signal from Ctrl-C reached the tool first):
    not a verdict on the variant. The build counts it as a failure unless it was interrupted."""


# how a tool dies when Ctrl-C reaches the whole process group, or when cancel() kills it
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


class ToolRunner:
    """Runs the toolchain's processes for one build; cancel() kills those running and refuses new
    ones, so an interrupted build stops in milliseconds instead of finishing every queued compile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self.cancelled = False

    def run(self, cmd: list[str]) -> tuple[int, str, str]:
        """(exit status, stdout, stderr); Cancelled once the build is cancelled."""
        with self._lock:  # held while starting, so cancel() never misses a process
            if self.cancelled:
                raise Cancelled()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._running.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        if self.cancelled or -proc.returncode in _STOP_SIGNALS:
            raise Cancelled(f"{cmd[0]} was stopped by signal {-proc.returncode}")
        return proc.returncode, out, err

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            running = list(self._running)
        for proc in running:
            proc.kill()


@dataclass(frozen=True)
class Compiled:
    spirv: bytes
    reflection: dict[str, Any]
    capabilities: tuple[int, ...]


def _map_diagnostics(output: str, glsl_path: Path, rendered: Rendered, variant: str) -> str:
    lines = []
    for raw in output.strip().splitlines():
        match = _DIAG_RE.match(raw)
        if match and Path(match["file"]).name == glsl_path.name:
            out_line = int(match["line"])
            src = rendered.source_of(out_line)
            origin = f"{src[0]}:{src[1]}" if src else f"{glsl_path}:{out_line}"
            lines.append(f"{origin}: {match['rest']} [variant {variant}; rendered {glsl_path}:{out_line}]")
        elif raw.strip() and not re.match(r"^\d+ errors? generated\.$", raw.strip()):
            lines.append(f"{raw} [variant {variant}]")
    return "\n".join(lines) or f"glslc failed for variant {variant}"


def _glslc_and_validate(
    runner: ToolRunner, rendered: Rendered, glsl_path: Path, spv: Path, variant: str, optimize: bool
) -> bytes:
    status, out, err = runner.run(["glslc", *glslc_flags(optimize), str(glsl_path), "-o", str(spv)])
    if status != 0:
        raise CompileError(_map_diagnostics(err + out, glsl_path, rendered, variant))
    status, out, err = runner.run(["spirv-val", "--target-env", TARGET_ENV, str(spv)])
    if status != 0:
        what = "the optimized (-O) module of " if optimize else ""
        raise CompileError(f"spirv-val rejected {what}variant {variant} ({glsl_path}): {(err + out).strip()}")
    return spv.read_bytes()


def compile_glsl(
    rendered: Rendered,
    glsl_path: Path,
    tmp_spv: Path,
    variant: str,
    *,
    optimize: bool = False,
    runner: ToolRunner | None = None,
) -> Compiled:
    """glslc -> spirv-val -> spirv-cross --reflect; raises CompileError with template locations.

    With `optimize`, the shipped module is glslc -O's (validated too), while reflection comes from
    the plain compile, whose names -O strips; the two must agree on the interface.
    """
    runner = runner or ToolRunner()
    spirv = _glslc_and_validate(runner, rendered, glsl_path, tmp_spv, variant, False)
    reflection = reflect(spirv, tmp_spv, variant, runner)
    if not optimize:
        return Compiled(spirv=spirv, reflection=reflection, capabilities=spirv_capabilities(spirv))
    tmp_opt = tmp_spv.with_name(tmp_spv.name.removesuffix(".tmp") + f"{OPTIMIZE_FLAG}.tmp")
    try:
        opt = _glslc_and_validate(runner, rendered, glsl_path, tmp_opt, variant, True)
        opt_reflection = reflect(opt, tmp_opt, variant, runner)
        plain = Compiled(spirv=spirv, reflection=reflection, capabilities=())
        problem = interface_difference(
            interface_from_reflection(plain), interface_from_reflection(Compiled(opt, opt_reflection, ()))
        )
        if problem:
            raise CompileError(f"glslc -O changed the interface of variant {variant} ({glsl_path}): {problem}")
        tmp_opt.replace(tmp_spv)
    finally:
        tmp_opt.unlink(missing_ok=True)
    return Compiled(spirv=opt, reflection=reflection, capabilities=spirv_capabilities(opt))


def interface_difference(plain: dict[str, Any], optimized: dict[str, Any]) -> str | None:
    """What the host-visible interface of the optimized module lost or changed, or None.

    Bindings (set, binding, kind), the entry point and the workgroup size must be the same. The
    optimizer drops spec constants nothing reads (e.g. DISPATCH_BLOCK_M, which only the host reads,
    from the manifest): setting a missing one is a no-op, so only an added id or a changed type counts.
    """

    def bindings(iface: dict[str, Any]) -> list[tuple[int, int, str]]:
        return [(b["set"], b["binding"], b["kind"]) for b in iface["bindings"]]

    if bindings(plain) != bindings(optimized):
        return f"descriptor bindings {bindings(plain)} became {bindings(optimized)}"
    plain_specs = {s["id"]: s["type"] for s in plain["spec_constants"]}
    for spec in optimized["spec_constants"]:
        if plain_specs.get(spec["id"]) != spec["type"]:
            return f"spec constant id {spec['id']} ({spec['type']}) is not in the unoptimized module as such"
    for key in ("entry_point", "local_size", "local_size_spec_ids"):
        if plain[key] != optimized[key]:
            return f"{key} {plain[key]} became {optimized[key]}"
    return None


def reflect(spirv: bytes, path: Path, variant: str, runner: ToolRunner | None = None) -> dict[str, Any]:
    """spirv-cross --reflect; for modules whose function bodies it cannot parse (the packaged
    spirv-cross predates cooperative-matrix instructions), reflect the same module with the
    bodies replaced by an empty main: declarations, decorations and types are untouched."""
    runner = runner or ToolRunner()
    status, out, err = runner.run(["spirv-cross", str(path), "--reflect"])
    if status != 0:
        stripped = path.with_name(path.name + ".iface")
        stripped.write_bytes(interface_only(spirv))
        try:
            status, out, err = runner.run(["spirv-cross", str(stripped), "--reflect"])
        finally:
            stripped.unlink(missing_ok=True)
    if status != 0:
        raise CompileError(f"spirv-cross could not reflect variant {variant}: {err.strip()}")
    return dict(json.loads(out))


def _instructions(words: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(start, word count, opcode) of each instruction after the 5-word header."""
    out = []
    i = 5
    while i < len(words):
        count, opcode = words[i] >> 16, words[i] & 0xFFFF
        if count == 0:
            raise CompileError("malformed SPIR-V: zero-length instruction")
        out.append((i, count, opcode))
        i += count
    return out


_COOP_TYPES = (5358, 4456)  # OpTypeCooperativeMatrixNV / KHR
_TYPE_OPS = (28, 29, 30, 32, 33)  # OpTypeArray, RuntimeArray, Struct, Pointer, Function
_VALUE_OPS = (44, 46, 59)  # OpConstantComposite, OpConstantNull, OpVariable
_ANNOTATION_OPS = (5, 6, 71, 72)  # OpName, OpMemberName, OpDecorate, OpMemberDecorate


def interface_only(spirv: bytes) -> bytes:
    """The module with every function dropped and an empty entry point in their place.

    Declarations that only function bodies use and that the packaged spirv-cross cannot parse
    (cooperative-matrix types, and types and constants built on them) are dropped too.
    """
    words = struct.unpack(f"<{len(spirv) // 4}I", spirv[: len(spirv) // 4 * 4])
    insts = _instructions(words)
    entry_id = next(words[s + 2] for s, _, op in insts if op == 15)  # OpEntryPoint: model, id
    first_fn = next(s for s, _, op in insts if op == 54)  # OpFunction
    main_fn = next(s for s, _, op in insts if op == 54 and words[s + 2] == entry_id)
    result_type, fn_type = words[main_fn + 1], words[main_fn + 4]
    dropped: set[int] = set()
    for start, count, op in insts:
        if start >= first_fn:
            break
        if op in _COOP_TYPES:
            dropped.add(words[start + 1])
        elif op in _TYPE_OPS and dropped.intersection(words[start + 2 : start + count]):
            dropped.add(words[start + 1])
        elif op in _VALUE_OPS and words[start + 1] in dropped:
            dropped.add(words[start + 2])
    kept: list[int] = []
    for start, count, op in insts:
        if start >= first_fn:
            break
        defines = words[start + 2] if op in _VALUE_OPS else words[start + 1]
        if op in _ANNOTATION_OPS and words[start + 1] in dropped:
            continue
        if (op in _COOP_TYPES or op in _TYPE_OPS or op in _VALUE_OPS) and defines in dropped:
            continue
        kept.extend(words[start : start + count])
    bound = words[3]
    body = [
        (5 << 16) | 54, result_type, entry_id, 0, fn_type,  # OpFunction
        (2 << 16) | 248, bound,  # OpLabel
        (1 << 16) | 253,  # OpReturn
        (1 << 16) | 56,  # OpFunctionEnd
    ]
    header = list(words[:5])
    header[3] = bound + 1
    out = header + kept + body
    return struct.pack(f"<{len(out)}I", *out)


def spirv_capabilities(spirv: bytes) -> tuple[int, ...]:
    """OpCapability operands, read from the module's instruction stream."""
    words = struct.unpack(f"<{len(spirv) // 4}I", spirv[: len(spirv) // 4 * 4])
    caps = []
    for start, _, opcode in _instructions(words):
        if opcode == 17:  # OpCapability
            caps.append(words[start + 1])
        elif opcode not in (10, 11, 14, 15, 16):  # capabilities come first; stop at the first other section
            break
    return tuple(caps)


def _type_size(type_name: str) -> int:
    match = re.fullmatch(r"([iu]?|f16)vec([234])", type_name)
    if match:
        return 4 * int(match.group(2))
    if type_name in ("float16_t", "int16_t", "uint16_t"):
        return 2
    if type_name in ("int8_t", "uint8_t"):
        return 1
    if type_name in _SCALAR_SIZES:
        return _SCALAR_SIZES[type_name]
    raise CompileError(f"push constant member of unsupported type {type_name!r}")


def interface_from_reflection(compiled: Compiled) -> dict[str, Any]:
    """Bindings, push constants, spec constants and local size, as the manifest stores them."""
    refl = compiled.reflection
    types = refl.get("types", {})
    bindings = []
    for kind, key in (("storage_buffer", "ssbos"), ("uniform_buffer", "ubos")):
        for block in refl.get(key, []):
            members = types[block["type"]]["members"]
            runtime_array = kind == "storage_buffer" and members[-1].get("array") == [0]
            if block.get("readonly"):
                access = "read"
            elif block.get("writeonly"):
                access = "write"
            else:
                access = "read_write" if kind == "storage_buffer" else "read"
            bindings.append(
                {
                    "set": block["set"],
                    "binding": block["binding"],
                    "name": members[0]["name"] if runtime_array and len(members) == 1 else block["name"],
                    "kind": kind,
                    "access": access,
                    "element": members[-1]["type"] if runtime_array else "block",
                    "element_size": members[-1].get("array_stride", 0) if runtime_array else 0,
                    "block_size": block.get("block_size", 0),
                }
            )
    bindings.sort(key=lambda b: (b["set"], b["binding"]))
    push = None
    if refl.get("push_constants"):
        pc_type = types[refl["push_constants"][0]["type"]]
        members = [
            {"name": m["name"], "offset": m["offset"], "type": m["type"], "size": _type_size(m["type"])}
            for m in pc_type["members"]
        ]
        push = {"size": max(m["offset"] + m["size"] for m in members), "members": members}
    specs = [
        {"id": s["id"], "name": s["name"], "type": s["type"], "default": s["default_value"]}
        for s in refl.get("specialization_constants", [])
    ]
    entry = refl["entryPoints"][0]
    spec_ids = [
        entry["workgroup_size"][i] if entry["workgroup_size_is_spec_constant_id"][i] else None for i in range(3)
    ]
    local = [0 if spec_ids[i] is not None else entry["workgroup_size"][i] for i in range(3)]
    return {
        "entry_point": entry["name"],
        "bindings": bindings,
        "push_constants": push,
        "spec_constants": sorted(specs, key=lambda s: s["id"]),
        "local_size": local,
        "local_size_spec_ids": spec_ids,
    }


def capability_features(capabilities: tuple[int, ...]) -> set[str]:
    return {CAPABILITY_FEATURES[c] for c in capabilities if c in CAPABILITY_FEATURES}
