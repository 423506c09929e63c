"""Read the build manifest: the runtime's only source of truth about variants."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from runtime.errors import ShaderkitError

REPO_ROOT = Path(__file__).resolve().parent.parent


class ManifestError(ShaderkitError):
    """The manifest is missing, unreadable, or names something it does not hold."""


def declared(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Spec-constant defaults of a variant by name: what its template states to the host
    (DISPATCH_BLOCK_M/N, SHARED_BYTES, ...) besides the constants the host sets."""
    return {s["name"]: s["default"] for s in entry.get("spec_constants", [])}


def default_manifest_path() -> Path:
    """`$SHADERKIT_BUILD/manifest.json` if set, else build/manifest.json in the repo."""
    build = os.environ.get("SHADERKIT_BUILD")
    return (Path(build) if build else REPO_ROOT / "build") / "manifest.json"


@dataclass(frozen=True)
class Manifest:
    path: Path
    variants: dict[str, dict[str, Any]]
    layouts: dict[str, dict[str, Any]]
    dtypes: dict[str, dict[str, Any]]

    def variant(self, name: str) -> dict[str, Any]:
        try:
            return self.variants[name]
        except KeyError:
            close = [n for n in self.variants if name.split("_")[0] in n][:8]
            raise ValueError(
                f"unknown variant {name!r} (not in {self.path}); known ones include: {', '.join(close) or 'none'}"
            ) from None

    def names(self, family: str | None = None, role: str | None = None) -> list[str]:
        return [
            n
            for n, v in self.variants.items()
            if (family is None or v["family"] == family) and (role is None or v["role"] == role)
        ]


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> Manifest:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc}); run `make shaders` first") from None
    variants = doc.get("variants", {})
    for entry in variants.values():
        entry["spv_path"] = str(path.parent / entry["spv"])
    return Manifest(path=path, variants=variants, layouts=doc.get("layouts", {}), dtypes=doc.get("dtypes", {}))


def load_manifest(path: Path | str | None = None) -> Manifest:
    """The manifest at `path` (default: default_manifest_path()), re-read when the file changes."""
    p = Path(path) if path else default_manifest_path()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        raise ManifestError(f"{p}: no manifest; run `make shaders` to build the variants") from None
    return _load(p.resolve(), mtime)


def list_variants(family: str | None = None) -> list[str]:
    """Names of the built variants, optionally of one family."""
    manifest = load_manifest()
    if family is not None and family not in {v["family"] for v in manifest.variants.values()}:
        families = sorted({v["family"] for v in manifest.variants.values()})
        raise ValueError(f"family={family!r}: no such family; known: {', '.join(families)}")
    return manifest.names(family=family)
