"""The build: variant specs -> rendered GLSL -> validated SPIR-V + manifest, incremental and atomic."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from codegen.compile import capability_features, compile_glsl, compiler_identity, interface_from_reflection
from codegen.errors import CodegenError
from codegen.manifest import MANIFEST_NAME, atomic_write, load_previous_manifest, manifest_document
from codegen.render import Renderer
from codegen.schema import VariantsFile, load_variants_file
from codegen.variants import VariantSpec, expand


@dataclass(frozen=True)
class Project:
    """Where a build reads from and writes to."""

    variants_file: Path
    template_dir: Path
    out_dir: Path

    @classmethod
    def default(cls, root: Path | None = None) -> Project:
        root = root or Path(__file__).resolve().parent.parent
        return cls(root / "variants.yaml", root / "templates", root / "build")


@dataclass
class BuildReport:
    variants: int = 0
    compiled: int = 0
    cached: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    compiled_names: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (
            f"shaderkit build: {self.variants} variants, {self.compiled} compiled, {self.cached} cached, "
            f"{len(self.failures)} failed, {self.seconds:.2f} s"
        )


def load_specs(project: Project) -> tuple[VariantsFile, list[VariantSpec]]:
    config, _ = load_variants_file(project.variants_file)
    try:
        return config, expand(config)
    except CodegenError as exc:
        raise type(exc)(f"{project.variants_file}: {exc}") from None


def _input_hash(spec: VariantSpec, config: VariantsFile, renderer: Renderer, compiler: str) -> str:
    digest = hashlib.sha256()
    for part in (compiler, renderer.dependency_hash(spec.template), spec.fingerprint_data(config)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Progress:
    """One updating line on a terminal; sparse plain lines in logs."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_print = 0.0

    def step(self, name: str, status: str) -> None:
        self.done += 1
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r\033[K[{self.done}/{self.total}] {status} {name}")
            if self.done == self.total:
                self.stream.write("\r\033[K")
            self.stream.flush()
        elif status == "FAILED" or now - self.last_print > 2.0 or self.done == self.total:
            self.stream.write(f"[{self.done}/{self.total}] {status} {name}\n")
            self.stream.flush()
            self.last_print = now


def _compile_one(
    spec: VariantSpec, config: VariantsFile, renderer: Renderer, out: Path, input_hash: str
) -> dict[str, Any]:
    rendered = renderer.render(spec.template, spec.context(config), spec.name)
    glsl_path = out / "glsl" / f"{spec.name}.comp"
    atomic_write(glsl_path, rendered.glsl.encode())
    spv_rel = f"spv/{spec.name}.spv"
    tmp_spv = out / "spv" / f".{spec.name}.{os.getpid()}.{id(spec)}.tmp"
    try:
        compiled = compile_glsl(rendered, glsl_path, tmp_spv, spec.name)
        entry = spec.to_json()
        entry["features"] = sorted(set(spec.features) | capability_features(compiled.capabilities))
        # reflection can still reject the variant: only replace the last good SPIR-V once it cannot
        entry.update(interface_from_reflection(compiled))
        entry.update(
            {"spv": spv_rel, "sha256": hashlib.sha256(compiled.spirv).hexdigest(), "input_hash": input_hash}
        )
        os.replace(tmp_spv, out / spv_rel)
    finally:
        tmp_spv.unlink(missing_ok=True)
    return entry


def build(
    project: Project,
    *,
    jobs: int | None = None,
    progress: Callable[[int], Progress] | None = None,
    lock_timeout: float = 600.0,
) -> BuildReport:
    """Build every variant; raises CodegenError for configuration problems, reports compile failures."""
    start = time.perf_counter()
    config, specs = load_specs(project)
    renderer = Renderer(project.template_dir)
    compiler = compiler_identity()
    out = project.out_dir
    (out / "spv").mkdir(parents=True, exist_ok=True)
    (out / "glsl").mkdir(parents=True, exist_ok=True)
    report = BuildReport(variants=len(specs))
    lock = FileLock(str(out / ".lock"))
    try:
        lock.acquire(timeout=0.05)
    except Timeout:
        sys.stderr.write(f"waiting for another build to release {out / '.lock'} ...\n")
        try:
            lock.acquire(timeout=lock_timeout)
        except Timeout:
            raise CodegenError(f"{out / '.lock'}: another build held the lock for {lock_timeout:.0f} s") from None
    try:
        previous = load_previous_manifest(out)
        entries: dict[str, dict[str, Any]] = {}
        todo: list[tuple[VariantSpec, str]] = []
        hash_errors: dict[str, str] = {}
        for spec in specs:
            try:
                ihash = _input_hash(spec, config, renderer, compiler)
            except CodegenError as exc:
                hash_errors[spec.name] = str(exc)
                continue
            old = previous.get(spec.name)
            if old and old.get("input_hash") == ihash and _file_sha256(out / old["spv"]) == old.get("sha256"):
                entries[spec.name] = old
                report.cached += 1
            else:
                todo.append((spec, ihash))
        report.failures.update(hash_errors)
        bar = (progress or Progress)(len(todo)) if todo else None
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
            futures = {pool.submit(_compile_one, s, config, renderer, out, h): s for s, h in todo}
            for fut in as_completed(futures):
                spec = futures[fut]
                try:
                    entries[spec.name] = fut.result()
                    report.compiled += 1
                    report.compiled_names.append(spec.name)
                    status = "compiled"
                except CodegenError as exc:
                    report.failures[spec.name] = str(exc)
                    status = "FAILED"
                except Exception as exc:  # a bug in the build itself: report it, keep the others going
                    report.failures[spec.name] = f"internal error while building: {type(exc).__name__}: {exc}"
                    status = "FAILED"
                if bar:
                    bar.step(spec.name, status)
        # a failed variant keeps its last good SPIR-V, so the build dir stays usable
        for name in report.failures:
            if name in previous and _file_sha256(out / previous[name]["spv"]) == previous[name].get("sha256"):
                entries[name] = previous[name]
        ordered = {s.name: entries[s.name] for s in specs if s.name in entries}
        atomic_write(out / MANIFEST_NAME, manifest_document(config, ordered, compiler))
        # a failed variant's rendered GLSL stays: its error message points into it
        _remove_stale(out, set(ordered), set(ordered) | set(report.failures))
    finally:
        lock.release()
    report.compiled_names.sort()
    report.seconds = time.perf_counter() - start
    return report


def _remove_stale(out: Path, keep: set[str], keep_glsl: set[str]) -> None:
    """Drop outputs of variants that no longer exist and temp files of killed builds."""
    for path in out.glob(f".{MANIFEST_NAME}.*.tmp"):  # atomic_write's temp file of the manifest
        path.unlink(missing_ok=True)
    for sub, suffix, names in (("spv", ".spv", keep), ("glsl", ".comp", keep_glsl)):
        for path in (out / sub).iterdir():
            stale_tmp = path.name.startswith(".") and path.name.endswith((".tmp", ".tmp.iface"))
            if stale_tmp or (path.suffix == suffix and path.stem not in names):
                path.unlink(missing_ok=True)
