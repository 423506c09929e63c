"""The JSON manifest beside the SPIR-V: the only thing the runtime reads about variants."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

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


def manifest_document(config: VariantsFile, entries: dict[str, dict[str, Any]], compiler: str) -> bytes:
    doc = {
        "format": FORMAT_VERSION,
        "compiler": compiler,
        "layouts": {k: v.model_dump() for k, v in config.layouts.items()},
        "dtypes": {k: v.model_dump() for k, v in config.dtypes.items()},
        "variants": entries,
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def load_previous_manifest(out: Path) -> dict[str, dict[str, Any]]:
    """Entries of the last manifest, or nothing if it is missing, corrupt or of another format."""
    try:
        doc = json.loads((out / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
        return {}
    variants = doc.get("variants")
    return variants if isinstance(variants, dict) else {}
