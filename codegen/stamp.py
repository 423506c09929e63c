"""The no-op fast path: a stamp in the build dir over every input and output of the last good build.

`python -m codegen build` checks it before importing pydantic or Jinja2 (stdlib only here): when
every input (variants file, template files, toolchain binaries, flags, the codegen sources, the
Python packages that render) and every output (manifest bytes, every .spv's bytes, the listing of
the build dir) is as the last fully successful build left it, the build would compile nothing and
rewrite the same bytes, so the summary is printed from the stamp instead.

Inputs are fingerprinted when a full build starts, before it reads them, so an edit made while it
runs leaves a stamp that no longer matches. Anything unexpected (no stamp, unreadable files, another
stamp version) means "not up to date": the full build decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from codegen.toolchain import OPTIMIZE_FLAG, find_tool, glslc_flags

# pathlib, typing and dataclasses cost more to import than the whole check: plain str paths here
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from codegen.project import Project

STAMP_NAME = ".noop-stamp.json"
STAMP_VERSION = 1
_CODEGEN_DIR = os.path.dirname(os.path.abspath(__file__))
# glslc -O links spirv-opt's passes in, so spirv-opt's own binary is not an input
_TOOLS = ("glslc", "spirv-val", "spirv-cross")
# Python packages whose version can change the rendered GLSL or the manifest
_PACKAGES = ("jinja2", "markupsafe", "yaml", "pydantic", "pydantic_core")


class _Digest:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def add(self, *parts: Any) -> None:
        for part in parts:
            self.h.update(part if isinstance(part, bytes) else repr(part).encode())
            self.h.update(b"\0")


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _stat_key(path: str | None) -> tuple[Any, ...]:
    if path is None:
        return ("missing",)
    try:
        st = os.stat(path)
    except OSError:
        return (path, "missing")
    return (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _tree(root: str) -> list[str]:
    """Every file below `root`, relative, sorted (dot files too: Jinja would read them)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(folder, root)
        found += [name if rel == "." else f"{rel}/{name}" for name in files]
    return sorted(found)


def _package_origin(package: str) -> str | None:
    """The `__init__.py` the import system would find first (importlib.util costs milliseconds)."""
    for entry in sys.path:
        init = os.path.join(entry or ".", package, "__init__.py")
        if os.path.isfile(init):
            return init
    return None


def input_fingerprint(variants_file: str, template_dir: str, optimize: bool) -> str:
    """sha256 over everything a build reads; computed before a full build reads any of it."""
    d = _Digest()
    d.add("shaderkit-stamp", STAMP_VERSION, sys.version, glslc_flags(optimize), OPTIMIZE_FLAG)
    variants = os.path.abspath(variants_file)
    d.add(variants, _file_digest(variants))
    templates = os.path.abspath(template_dir)
    d.add(templates)
    for rel in _tree(templates):
        d.add(rel, _file_digest(os.path.join(templates, rel)))
    for tool in _TOOLS:
        d.add(tool, _stat_key(find_tool(tool)))
    for name in sorted(os.listdir(_CODEGEN_DIR)):
        if name.endswith(".py"):
            d.add(name, _file_digest(os.path.join(_CODEGEN_DIR, name)))
    for package in _PACKAGES:
        origin = _package_origin(package)
        # the folder holding the package changes whenever anything is installed or upgraded there
        d.add(package, _stat_key(origin), _stat_key(os.path.dirname(os.path.dirname(origin)) if origin else None))
    return d.h.hexdigest()


def output_fingerprint(out: str) -> str | None:
    """sha256 over the manifest, every .spv and the build dir's listing; None if something is missing."""
    d = _Digest()
    manifest = _file_digest(os.path.join(out, "manifest.json"))
    if manifest is None:
        return None
    d.add(manifest)
    try:
        # the build's own top-level names (temp files of killed builds included), not other tools' files
        top = sorted(n for n in os.listdir(out) if n.startswith(".") or n in ("manifest.json", "spv", "glsl"))
        top = [n for n in top if n not in (STAMP_NAME, ".lock")]
        spv = sorted(os.listdir(os.path.join(out, "spv")))
        glsl = sorted(os.listdir(os.path.join(out, "glsl")))
    except OSError:
        return None
    d.add(top, glsl, spv)
    for name in spv:
        digest = _file_digest(os.path.join(out, "spv", name))
        if digest is None:
            return None
        d.add(name, digest)
    return d.h.hexdigest()


def summary_line(variants: int, seconds: float) -> str:
    """The summary of a build that found everything up to date (the full build prints the same)."""
    return (
        f"shaderkit build: {variants} variants, 0 compiled, {variants} cached, 0 unchanged, 0 failed, "
        f"{seconds:.2f} s"
    )


def up_to_date(variants_file: str, template_dir: str, out: str, optimize: bool) -> str | None:
    """The summary line when the last good build's stamp still matches everything, else None."""
    start = time.perf_counter()
    try:
        with open(os.path.join(out, STAMP_NAME), "rb") as fh:
            stamp = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("version") != STAMP_VERSION:
        return None
    if not isinstance(stamp.get("variants"), int):
        return None
    if stamp.get("inputs") != input_fingerprint(variants_file, template_dir, optimize):
        return None
    if stamp.get("outputs") != output_fingerprint(out):
        return None
    return summary_line(stamp["variants"], time.perf_counter() - start)


def project_inputs(project: Project, optimize: bool) -> str:
    return input_fingerprint(os.fspath(project.variants_file), os.fspath(project.template_dir), optimize)


def write_stamp(out: str, inputs: str, variants: int) -> None:
    outputs = output_fingerprint(out)
    if outputs is None:
        return
    data = {"version": STAMP_VERSION, "inputs": inputs, "outputs": outputs, "variants": variants}
    tmp = os.path.join(out, f".{STAMP_NAME}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data))
    os.replace(tmp, os.path.join(out, STAMP_NAME))


def remove_stamp(out: str) -> None:
    try:
        os.unlink(os.path.join(out, STAMP_NAME))
    except FileNotFoundError:
        pass
