"""The JSON manifest beside the SPIR-V: the only thing the runtime reads about variants."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from codegen.names import is_safe_name
from codegen.schema import VariantsFile

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# mkstemp creates 0600 files; outputs get the mode a plain open() would give them
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_document(
    config: VariantsFile, entries: dict[str, dict[str, Any]], compiler: str, *, optimized: bool = False
) -> bytes:
    """The manifest's bytes; its format is codegen/manifest.schema.json, explained in docs/manifest.md."""
    doc = {
        "format": FORMAT_VERSION,
        "compiler": compiler,
        "optimized": optimized,
        "layouts": {k: v.model_dump() for k, v in config.layouts.items()},
        "dtypes": {k: v.model_dump() for k, v in config.dtypes.items()},
        "variants": entries,
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


# what the build reads back from a previous entry to reuse it; the runtime reads the rest too
_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "family": str,
    "template": str,
    "role": str,
    "axes": dict,
    "features": list,
    "params": dict,
    "entry_point": str,
    "bindings": list,
    "push_constants": (dict, type(None)),
    "spec_constants": list,
    "local_size": list,
    "local_size_spec_ids": list,
    "spv": str,
    "sha256": str,
    "input_hash": str,
}


def usable_entry(name: Any, entry: Any) -> bool:
    """Whether a previous manifest entry is whole enough to reuse: a hand-edited or damaged one is
    treated as absent (and rebuilt over) rather than trusted or crashed on."""
    return (
        isinstance(name, str)
        and is_safe_name(name)
        and isinstance(entry, dict)
        and all(isinstance(entry.get(key), types) for key, types in _ENTRY_TYPES.items())
        and entry["name"] == name
        and entry["spv"] == f"spv/{name}.spv"  # never a path out of the build dir
    )


def load_previous_manifest(out: Path) -> dict[str, dict[str, Any]]:
    """Usable entries of the last manifest; nothing if it is missing, corrupt or of another format."""
    try:
        doc = json.loads((out / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
        return {}
    variants = doc.get("variants")
    if not isinstance(variants, dict):
        return {}
    return {name: entry for name, entry in variants.items() if usable_entry(name, entry)}
