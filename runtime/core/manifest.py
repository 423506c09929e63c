"""The build manifest, typed: the runtime's only source of truth about variants.

`build/manifest.json` is written by the codegen (its format: docs/manifest.md and
codegen/manifest.schema.json). This module turns each entry into a :class:`VariantEntry` once,
checking every key it reads, so the rest of the runtime never indexes a raw dict and a damaged
manifest fails here with the entry and key at fault instead of as a KeyError far away.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from .errors import ShaderkitError

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMAT_VERSION = 1
BINDING_KINDS = {"storage_buffer": "storage", "uniform_buffer": "uniform"}
ACCESS = ("read", "write", "read_write")


class ManifestError(ShaderkitError):
    """The manifest is missing, unreadable, malformed, or names something it does not hold."""


# -- typed entry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One descriptor binding of a variant, as reflected from its SPIR-V."""

    set: int
    binding: int
    name: str
    kind: str  # "storage_buffer" | "uniform_buffer"
    access: str  # "read" | "write" | "read_write"
    element: str  # GLSL type of a runtime array's element, or "block" for a fixed-size block
    element_size: int  # array stride in bytes (0 for a block)
    block_size: int  # bytes of the fixed part of the block

    @property
    def descriptor(self) -> str:
        """The buffer kind a descriptor of this binding needs: "storage" or "uniform"."""
        return BINDING_KINDS[self.kind]

    def label(self) -> str:
        return f"binding {self.binding} ({self.name!r})"


@dataclass(frozen=True)
class PushMember:
    name: str
    offset: int
    type: str
    size: int


@dataclass(frozen=True)
class PushConstants:
    size: int
    members: tuple[PushMember, ...]

    def member(self, name: str) -> PushMember | None:
        return next((m for m in self.members if m.name == name), None)


@dataclass(frozen=True)
class SpecConstant:
    id: int
    name: str  # "" where the module carries no name
    type: str
    default: Any


@dataclass(frozen=True, eq=False)
class VariantEntry:
    """Everything the runtime knows about one variant: what the build produced and reflected."""

    name: str
    family: str
    role: str
    spv_path: Path
    sha256: str
    bindings: tuple[Binding, ...]
    push_constants: PushConstants | None
    spec_constants: tuple[SpecConstant, ...]
    local_size: tuple[int, int, int]  # 0 on an axis whose size is a spec constant
    local_size_spec_ids: tuple[int | None, int | None, int | None]
    entry_point: str = "main"
    template: str = ""
    axes: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ()

    @cached_property
    def declared(self) -> dict[str, Any]:
        """Spec-constant defaults by name: what the template states to the host (DISPATCH_BLOCK_M/N,
        SHARED_BYTES, ...) besides the constants the host sets."""
        return {s.name: s.default for s in self.spec_constants if s.name}

    def binding(self, key: str | int) -> Binding:
        """The binding named `key` (its reflected name) or numbered `key`; ValueError listing them."""
        for b in self.bindings:
            if (isinstance(key, str) and b.name == key) or (
                not isinstance(key, (str, bool)) and isinstance(key, int) and b.binding == key
            ):
                return b
        known = ", ".join(f"{b.binding} ({b.name})" for b in self.bindings) or "none"
        raise ValueError(f"{self.name}: no binding {key!r}; its bindings are {known}")

    def spec_constant(self, key: str | int) -> SpecConstant | None:
        for s in self.spec_constants:
            if (isinstance(key, str) and key and s.name == key) or (
                isinstance(key, int) and not isinstance(key, bool) and s.id == key
            ):
                return s
        return None

    # -- parsing ------------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, doc: Any, base: Path, where: str = "manifest") -> VariantEntry:
        """Parse one manifest entry; ManifestError naming `where` and the key on anything malformed.

        `spv` is relative to `base` (the manifest's folder).
        """
        r = _Reader(doc, where)
        name = r.text("name")
        if "variant" not in where:
            r.where = f"{where}: variant {name!r}"
        push_doc = r.get("push_constants", None)
        push = None
        if push_doc is not None:
            p = _Reader(push_doc, f"{r.where}: push_constants")
            members = tuple(
                PushMember(m.text("name"), m.count("offset"), m.text("type"), m.count("size"))
                for m in p.items("members")
            )
            push = PushConstants(p.count("size"), members)
        bindings = []
        for b in r.items("bindings"):
            kind = b.choice("kind", tuple(BINDING_KINDS))
            bindings.append(Binding(
                set=b.count("set"), binding=b.count("binding"), name=b.text("name"), kind=kind,
                access=b.choice("access", ACCESS), element=b.text("element"),
                element_size=b.count("element_size"), block_size=b.count("block_size"),
            ))
        specs = tuple(
            SpecConstant(s.count("id"), s.text("name", allow_empty=True), s.text("type"), s.get("default", 0))
            for s in r.items("spec_constants")
        )
        return cls(
            name=name,
            family=r.text("family"),
            role=r.text("role"),
            spv_path=base / r.text("spv"),
            sha256=r.text("sha256"),
            bindings=tuple(sorted(bindings, key=lambda b: (b.set, b.binding))),
            push_constants=push,
            spec_constants=tuple(sorted(specs, key=lambda s: s.id)),
            local_size=r.triple("local_size", int),
            local_size_spec_ids=r.triple("local_size_spec_ids", (int, type(None))),
            entry_point=r.text("entry_point") if "entry_point" in r.doc else "main",
            template=str(r.get("template", "")),
            axes=r.mapping("axes"),
            params=r.mapping("params"),
            features=tuple(r.texts("features")),
        )


class _Reader:
    """Typed access to one JSON object with errors that say where."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected an object, got {type(doc).__name__}")
        self.doc = doc
        self.where = where

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.doc:
            if default is ...:
                raise ManifestError(f"{self.where}: key {key!r} is missing")
            return default
        return self.doc[key]

    def _bad(self, key: str, what: str) -> ManifestError:
        return ManifestError(f"{self.where}: {key} must be {what}, got {self.doc.get(key)!r}")

    def text(self, key: str, *, allow_empty: bool = False) -> str:
        value = self.get(key)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self._bad(key, "a non-empty string")
        return value

    def count(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._bad(key, "a non-negative integer")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.get(key)
        if value not in allowed:
            raise self._bad(key, f"one of {list(allowed)}")
        return str(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.get(key, {})
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def texts(self, key: str) -> list[str]:
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return value

    def items(self, key: str) -> list[_Reader]:
        value = self.get(key, [])
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return [_Reader(v, f"{self.where}: {key}[{i}]") for i, v in enumerate(value)]

    def triple(self, key: str, types: Any) -> Any:
        value = self.get(key)
        if (not isinstance(value, list) or len(value) != 3
                or not all(isinstance(v, types) and not isinstance(v, bool) for v in value)):
            raise self._bad(key, "a list of 3 integers")
        return tuple(value)


# -- the whole manifest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """All variants of one build, plus the shared tables (layouts, dtypes) of its variants file."""

    path: Path
    variants: dict[str, VariantEntry]
    layouts: dict[str, dict[str, Any]]
    dtypes: dict[str, dict[str, Any]]
    digest: str = ""  # sha256 of the manifest file: identifies the build (tuning caches key on it)

    def variant(self, name: str) -> VariantEntry:
        """The entry of `name`; ValueError listing similar names when there is none."""
        try:
            return self.variants[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self.variants), n=8, cutoff=0.6)
            raise ValueError(
                f"unknown variant {name!r} (not in {self.path}); known ones include: {', '.join(close) or 'none'}"
            ) from None

    def entries(self, *, family: str | None = None, role: str | None = None) -> list[VariantEntry]:
        return [
            v for v in self.variants.values()
            if (family is None or v.family == family) and (role is None or v.role == role)
        ]

    def names(self, family: str | None = None, role: str | None = None) -> list[str]:
        return [v.name for v in self.entries(family=family, role=role)]

    @property
    def families(self) -> list[str]:
        return sorted({v.family for v in self.variants.values()})

    @property
    def roles(self) -> list[str]:
        return sorted({v.role for v in self.variants.values()})

    def subset(self, keep: Sequence[VariantEntry]) -> Manifest:
        """The same manifest holding only `keep` (for pickers that filter first)."""
        return Manifest(self.path, {v.name: v for v in keep}, self.layouts, self.dtypes, self.digest)


def parse_manifest(raw: bytes, path: Path) -> Manifest:
    """Parse manifest bytes read from `path`; ManifestError saying what is wrong and how to fix it."""
    fix = "run `make shaders` to rebuild it"
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a JSON object at the top level; {fix}")
    if doc.get("format") != FORMAT_VERSION:
        raise ManifestError(
            f"{path}: manifest format {doc.get('format')!r}, this runtime reads {FORMAT_VERSION}; {fix}"
        )
    variants = doc.get("variants")
    if not isinstance(variants, dict):
        raise ManifestError(f"{path}: 'variants' must be an object; {fix}")
    entries = {}
    for key, entry in variants.items():
        parsed = VariantEntry.from_json(entry, path.parent, f"{path}: variant {key!r}")
        if parsed.name != key:
            raise ManifestError(f"{path}: entry {key!r} is named {parsed.name!r}; {fix}")
        entries[key] = parsed
    tables = {}
    for table in ("layouts", "dtypes"):
        value = doc.get(table, {})
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ManifestError(f"{path}: '{table}' must be an object of objects; {fix}")
        tables[table] = value
    return Manifest(path, entries, tables["layouts"], tables["dtypes"], hashlib.sha256(raw).hexdigest())


def default_manifest_path() -> Path:
    """`$SHADERKIT_BUILD/manifest.json` if set, else build/manifest.json in the repo."""
    build = os.environ.get("SHADERKIT_BUILD")
    return (Path(build) if build else REPO_ROOT / "build") / "manifest.json"


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int, size: int) -> Manifest:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror}); run `make shaders` first") from None
    return parse_manifest(raw, path)


def load_manifest(path: Path | str | None = None) -> Manifest:
    """The manifest at `path` (default: default_manifest_path()), re-read when the file changes."""
    p = Path(path) if path else default_manifest_path()
    try:
        st = p.stat()
    except OSError:
        raise ManifestError(f"{p}: no manifest; run `make shaders` to build the variants") from None
    if not p.is_file():
        raise ManifestError(f"{p}: not a file; remove it and run `make shaders`")
    return _load(p.resolve(), st.st_mtime_ns, st.st_size)


def list_variants(family: str | None = None) -> list[str]:
    """Names of the built variants, optionally of one family (a `families:` key of variants.yaml)."""
    manifest = load_manifest()
    if family is not None and family not in manifest.families:
        raise ValueError(f"family={family!r}: no such family; known: {', '.join(manifest.families)}")
    return manifest.names(family=family)
