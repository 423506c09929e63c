"""The build: variant specs -> rendered GLSL -> validated SPIR-V + manifest, incremental and atomic.

Two cache levels. The first key (`input_hash`) covers the template sources and the whole template
context, so a hit costs no rendering. On a miss the variant is rendered and its GLSL hashed with
the compiler identity (`glsl_hash`): when that equals the previous entry's, the previous SPIR-V and
reflection are reused without running glslc (`unchanged` in the report). Editing a layout no
template reads, or a family param no template uses, therefore compiles nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from codegen import stamp
from codegen.compile import (
    Cancelled,
    ToolRunner,
    capability_features,
    compile_glsl,
    compiler_identity,
    interface_from_reflection,
    spirv_capabilities,
)
from codegen.errors import CodegenError
from codegen.manifest import MANIFEST_NAME, atomic_write, load_previous_manifest, manifest_document
from codegen.project import Project
from codegen.render import Renderer
from codegen.schema import VariantsFile, load_variants
from codegen.variants import VariantSpec, expand

__all__ = ["BuildInterrupted", "BuildReport", "Progress", "Project", "build", "load_specs"]

# entry keys that come from reflecting the SPIR-V (reused as they are when the GLSL is unchanged)
INTERFACE_KEYS = ("entry_point", "bindings", "push_constants", "spec_constants", "local_size", "local_size_spec_ids")


@dataclass
class BuildReport:
    variants: int = 0
    compiled: int = 0  # glslc ran
    cached: int = 0  # first-level key hit: not even rendered
    unchanged: int = 0  # rendered, same GLSL as the previous build: previous SPIR-V reused
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    compiled_names: list[str] = field(default_factory=list)
    unchanged_names: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted

    def summary(self) -> str:
        line = (
            f"shaderkit build: {self.variants} variants, {self.compiled} compiled, {self.cached} cached, "
            f"{self.unchanged} unchanged, {len(self.failures)} failed, {self.seconds:.2f} s"
        )
        if self.interrupted:
            left = self.variants - self.compiled - self.cached - self.unchanged - len(self.failures)
            line += f" (interrupted: {left} not built)"
        return line


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build, raised after the manifest was written for what finished."""

    def __init__(self, report: BuildReport) -> None:
        super().__init__(report.summary())
        self.report = report


def load_specs(project: Project) -> tuple[VariantsFile, list[VariantSpec]]:
    config, _, locator = load_variants(project.variants_file)
    try:
        return config, expand(config)
    except CodegenError as exc:
        loc = getattr(exc, "loc", None)
        prefix = locator.where(loc) if loc else str(project.variants_file)
        raise type(exc)(f"{prefix}: {exc}") from None


def _input_hash(spec: VariantSpec, config: VariantsFile, renderer: Renderer, compiler: str) -> str:
    digest = hashlib.sha256()
    for part in (compiler, renderer.dependency_hash(spec.template), spec.fingerprint_data(config)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def glsl_hash(compiler: str, glsl: str) -> str:
    """What the SPIR-V of a variant is a function of: its GLSL, the compiler and its flags."""
    return hashlib.sha256(compiler.encode() + b"\0" + glsl.encode()).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _file_sha256(path: Path) -> str | None:
    data = _read(path)
    return hashlib.sha256(data).hexdigest() if data is not None else None


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


@dataclass(frozen=True)
class _Job:
    """One variant whose first-level key missed."""

    spec: VariantSpec
    input_hash: str
    previous: dict[str, Any] | None
    # the previous entry's first-level key matched but it predates glsl_hash: its GLSL is this one
    same_inputs: bool = False


@dataclass(frozen=True)
class _Env:
    """What every job of one build shares."""

    config: VariantsFile
    renderer: Renderer
    out: Path
    compiler: str
    optimize: bool
    runner: ToolRunner


def _write_if_changed(path: Path, data: bytes) -> None:
    if _read(path) != data:
        atomic_write(path, data)


def _reuse(job: _Job, ghash: str, out: Path) -> dict[str, Any] | None:
    """The previous entry refreshed for this spec, when its GLSL is the same and its .spv intact."""
    old = job.previous
    if not old or (old.get("glsl_hash") != ghash and not job.same_inputs):
        return None
    spirv = _read(out / old["spv"])
    if spirv is None or hashlib.sha256(spirv).hexdigest() != old["sha256"]:
        return None
    entry = job.spec.to_json()
    # spec-derived keys (role, params, features from the YAML) may have changed with the GLSL the same
    entry["features"] = sorted(set(job.spec.features) | capability_features(spirv_capabilities(spirv)))
    entry.update({key: old[key] for key in INTERFACE_KEYS})
    entry.update({"spv": old["spv"], "sha256": old["sha256"], "input_hash": job.input_hash, "glsl_hash": ghash})
    return entry


def _build_one(job: _Job, env: _Env) -> tuple[str, dict[str, Any]]:
    """("unchanged" | "compiled", manifest entry) for one variant."""
    spec, out = job.spec, env.out
    if env.runner.cancelled:
        raise Cancelled()
    rendered = env.renderer.render(spec.template, spec.context(env.config), spec.name)
    ghash = glsl_hash(env.compiler, rendered.glsl)
    glsl_path = out / "glsl" / f"{spec.name}.comp"
    _write_if_changed(glsl_path, rendered.glsl.encode())
    reused = _reuse(job, ghash, out)
    if reused is not None:
        return "unchanged", reused
    spv_rel = f"spv/{spec.name}.spv"
    tmp_spv = out / "spv" / f".{spec.name}.{os.getpid()}.{id(job)}.tmp"
    try:
        compiled = compile_glsl(rendered, glsl_path, tmp_spv, spec.name, optimize=env.optimize, runner=env.runner)
        entry = spec.to_json()
        entry["features"] = sorted(set(spec.features) | capability_features(compiled.capabilities))
        # reflection can still reject the variant: only replace the last good SPIR-V once it cannot
        entry.update(interface_from_reflection(compiled))
        entry.update(
            {
                "spv": spv_rel,
                "sha256": hashlib.sha256(compiled.spirv).hexdigest(),
                "input_hash": job.input_hash,
                "glsl_hash": ghash,
            }
        )
        if env.runner.cancelled:
            raise Cancelled()
        os.replace(tmp_spv, out / spv_rel)
    finally:
        tmp_spv.unlink(missing_ok=True)
    return "compiled", entry


def _prepare_out_dir(out: Path) -> None:
    """Create the build dir; a clean CodegenError when it cannot be one."""
    if out.exists() and not out.is_dir():
        raise CodegenError(f"{out}: the build directory is not a directory; remove it or pick another --out")
    try:
        for sub in ("spv", "glsl"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodegenError(f"{out}: cannot create the build directory: {exc.strerror}") from None
    manifest = out / MANIFEST_NAME
    if (manifest.exists() or manifest.is_symlink()) and not manifest.is_file():
        raise CodegenError(f"{manifest}: is not a file (a directory?); remove it, the build writes it")
    if not os.access(out, os.W_OK | os.X_OK) or not os.access(out / "spv", os.W_OK | os.X_OK):
        raise CodegenError(f"{out}: the build directory is not writable")


def _lock(out: Path, timeout: float) -> FileLock:
    lock = FileLock(str(out / ".lock"))
    try:
        try:
            lock.acquire(timeout=0.05)
        except Timeout:
            sys.stderr.write(f"waiting for another build to release {out / '.lock'} ...\n")
            try:
                lock.acquire(timeout=timeout)
            except Timeout:
                raise CodegenError(f"{out / '.lock'}: another build held the lock for {timeout:.0f} s") from None
    except OSError as exc:
        raise CodegenError(f"{out / '.lock'}: cannot take the build lock: {exc.strerror}") from None
    return lock


class _Run:
    """The state of one build while it runs: what is done, what failed, what to write."""

    def __init__(self, specs: list[VariantSpec], env: _Env, report: BuildReport) -> None:
        self.specs = specs
        self.env = env
        self.report = report
        self.previous = load_previous_manifest(env.out)
        self.entries: dict[str, dict[str, Any]] = {}
        self.stopped: dict[str, str] = {}  # variants whose tools were stopped by a signal

    def first_level(self) -> list[_Job]:
        """Cache hits go straight to entries; the rest become jobs."""
        todo = []
        out = self.env.out
        for spec in self.specs:
            try:
                ihash = _input_hash(spec, self.env.config, self.env.renderer, self.env.compiler)
            except CodegenError as exc:
                self.report.failures[spec.name] = str(exc)
                continue
            old = self.previous.get(spec.name)
            hit = old is not None and old["input_hash"] == ihash and _file_sha256(out / old["spv"]) == old["sha256"]
            if hit and old is not None and "glsl_hash" in old:
                self.entries[spec.name] = old
                self.report.cached += 1
            else:
                todo.append(_Job(spec, ihash, old, same_inputs=hit))
        return todo

    def finish(self, spec: VariantSpec, fut: Future[tuple[str, dict[str, Any]]]) -> str:
        """Record one finished job; returns the progress status."""
        try:
            status, entry = fut.result()
        except Cancelled as exc:
            self.stopped[spec.name] = f"{exc} while building {spec.name}"
            return "stopped"
        except CodegenError as exc:
            self.report.failures[spec.name] = str(exc)
            return "FAILED"
        except OSError as exc:
            self.report.failures[spec.name] = f"cannot write the outputs of {spec.name}: {exc}"
            return "FAILED"
        except Exception as exc:  # a bug in the build itself: report it, keep the others going
            self.report.failures[spec.name] = f"internal error while building: {type(exc).__name__}: {exc}"
            return "FAILED"
        self.entries[spec.name] = entry
        if status == "unchanged":
            self.report.unchanged += 1
            self.report.unchanged_names.append(spec.name)
        else:
            self.report.compiled += 1
            self.report.compiled_names.append(spec.name)
        return status

    def run_jobs(self, todo: list[_Job], jobs: int | None, progress: Callable[[int], Progress] | None) -> None:
        if not todo:
            return
        bar = (progress or Progress)(len(todo))
        pool = ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2)
        futures: dict[Future[tuple[str, dict[str, Any]]], VariantSpec] = {}
        recorded: set[str] = set()
        try:
            for job in todo:
                futures[pool.submit(_build_one, job, self.env)] = job.spec
            for fut in as_completed(futures):
                spec = futures[fut]
                recorded.add(spec.name)
                bar.step(spec.name, self.finish(spec, fut))
        except KeyboardInterrupt:
            # stop now: queued jobs are cancelled, running tools killed; jobs that finished are kept
            self.report.interrupted = True
            self.env.runner.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, spec in futures.items():
                if spec.name not in recorded and fut.done() and not fut.cancelled():
                    self.finish(spec, fut)
        finally:
            pool.shutdown(wait=True)
        if not self.report.interrupted:  # a tool killed from outside, not by our Ctrl-C: a failure
            self.report.failures.update(self.stopped)

    def write(self, interrupted: bool) -> None:
        out = self.env.out
        # a failed or unbuilt variant keeps its last good SPIR-V, so the build dir stays usable
        for spec in self.specs:
            old = self.previous.get(spec.name)
            if spec.name not in self.entries and old and _file_sha256(out / old["spv"]) == old["sha256"]:
                self.entries[spec.name] = old
        ordered = {s.name: self.entries[s.name] for s in self.specs if s.name in self.entries}
        document = manifest_document(self.env.config, ordered, self.env.compiler, optimized=self.env.optimize)
        try:
            atomic_write(out / MANIFEST_NAME, document)
        except OSError as exc:
            raise CodegenError(f"{out / MANIFEST_NAME}: cannot write the manifest: {exc.strerror}") from None
        # a failed variant's rendered GLSL stays: its error message points into it
        keep_glsl = {s.name for s in self.specs} if interrupted else set(ordered) | set(self.report.failures)
        _remove_stale(out, set(ordered), keep_glsl)


def build(
    project: Project,
    *,
    jobs: int | None = None,
    progress: Callable[[int], Progress] | None = None,
    lock_timeout: float = 600.0,
    optimize: bool = False,
) -> BuildReport:
    """Build every variant; raises CodegenError for configuration problems, reports compile failures.

    `optimize` ships glslc -O SPIR-V (see codegen/compile.py). Ctrl-C stops the build promptly,
    writes the manifest for every variant that finished (previous good entries for the rest) and
    raises BuildInterrupted.
    """
    start = time.perf_counter()
    inputs = stamp.project_inputs(project, optimize)  # before anything is read: see codegen/stamp.py
    config, specs = load_specs(project)
    renderer = Renderer(project.template_dir)
    compiler = compiler_identity(optimize)
    out = project.out_dir
    _prepare_out_dir(out)
    report = BuildReport(variants=len(specs))
    lock = _lock(out, lock_timeout)
    try:
        stamp.remove_stamp(os.fspath(out))
        run = _Run(specs, _Env(config, renderer, out, compiler, optimize, ToolRunner()), report)
        try:
            run.run_jobs(run.first_level(), jobs, progress)
        except KeyboardInterrupt:  # during the first-level keys, before any job ran
            report.interrupted = True
        run.write(report.interrupted)
        if report.ok:
            try:
                stamp.write_stamp(os.fspath(out), inputs, len(specs))
            except OSError:
                pass  # only the next no-op build's shortcut is lost
    finally:
        lock.release()
    report.compiled_names.sort()
    report.unchanged_names.sort()
    report.seconds = time.perf_counter() - start
    if report.interrupted:
        raise BuildInterrupted(report)
    return report


def _remove_stale(out: Path, keep: set[str], keep_glsl: set[str]) -> None:
    """Drop outputs of variants that no longer exist and temp files of killed builds."""
    for path in out.glob(".*.tmp"):  # atomic_write's temp files of the manifest and the stamp
        path.unlink(missing_ok=True)
    for sub, suffix, names in (("spv", ".spv", keep), ("glsl", ".comp", keep_glsl)):
        for path in (out / sub).iterdir():
            stale_tmp = path.name.startswith(".") and path.name.endswith((".tmp", ".tmp.iface"))
            if stale_tmp or (path.suffix == suffix and path.stem not in names):
                path.unlink(missing_ok=True)
