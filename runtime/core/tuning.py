"""Per-device tuning cache: which variant an op should pick for a class of shapes, as measured.

`python -m bench tune` (or `make tune`) times every variant that fits the device on the shape
classes an op uses and records the fastest here; the op's picker asks :func:`lookup` first and
falls back to its own heuristics when there is no entry (or the entry's variant no longer fits).
The core knows nothing about any op: an op names itself (``op_key``) and its shape classes
(``shape_class``), free strings; a choice is a variant name or a small JSON object of names.

Where:  ``<build dir>/tuning/<device>.json``; the build dir is the manifest's folder (``build/``, or
        ``$SHADERKIT_BUILD``), so a cache lives and dies with the SPIR-V it was measured on.
Key:    device name, vendor id, driver (name + version) and the manifest's sha256 digest. A file whose
        key differs (another build, a driver update) is ignored whole, never half-used.
Invalidate: rebuild (`make shaders` changes the digest), update the driver, delete ``build/tuning/``,
        or set ``SHADERKIT_TUNING=off`` to ignore every cache (heuristics only).
Writes are atomic (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .manifest import Manifest

FORMAT = 1
ENV = "SHADERKIT_TUNING"  # "off" / "0" / "false": ignore every cache
FOLDER = "tuning"
Choice = str | dict[str, str]

_disabled: ContextVar[bool] = ContextVar("shaderkit_tuning_disabled", default=False)


@dataclass(frozen=True)
class CacheKey:
    """What a cache was measured on; a cache is used only where all of it matches."""

    device: str
    vendor_id: int
    driver: str
    manifest_digest: str

    @classmethod
    def of(cls, device: Any, manifest: Manifest) -> CacheKey:
        """The key of `device` (a runtime.core.device.Device, or anything with its `info`) and `manifest`."""
        info = device.info
        return cls(info.name, int(info.vendor_id), f"{info.driver_name} {info.driver_info}".strip(),
                   manifest.digest)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "vendor_id": self.vendor_id, "driver": self.driver,
                "manifest_digest": self.manifest_digest}


def slug(text: str) -> str:
    """Lower-case alphanumerics and single dashes: a device name that is safe as a file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def cache_path(manifest: Manifest, device_name: str) -> Path:
    """Where the cache of `device_name` lives for this build."""
    return manifest.path.parent / FOLDER / f"{slug(device_name)}.json"


def enabled() -> bool:
    """False inside :func:`disabled` or when $SHADERKIT_TUNING is off."""
    if _disabled.get():
        return False
    return os.environ.get(ENV, "").strip().lower() not in ("off", "0", "false", "no")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Lookups in this block return None: the ops pick by heuristics (the bench compares both)."""
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


def _check_choice(choice: Any, where: str) -> Choice:
    if isinstance(choice, str) and choice:
        return choice
    if isinstance(choice, Mapping) and choice and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in choice.items()
    ):
        return dict(choice)
    raise ValueError(f"{where}: a choice must be a variant name or an object of names, got {choice!r}")


@dataclass
class TuningCache:
    """The entries of one device and build: op_key -> shape_class -> entry (``choice`` + what was measured)."""

    key: CacheKey
    path: Path
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def lookup(self, op_key: str, shape_class: str) -> Choice | None:
        entry = self.entries.get(op_key, {}).get(shape_class)
        return None if entry is None else _check_choice(entry["choice"], f"{self.path}: {op_key}/{shape_class}")

    def record(self, op_key: str, shape_class: str, choice: Choice, **detail: Any) -> None:
        """Set the choice of one shape class; `detail` (JSON-able: times, the heuristic's choice) is kept
        beside it for people reading the file."""
        if not op_key or not shape_class:
            raise ValueError(f"op_key and shape_class must be non-empty, got {op_key!r}, {shape_class!r}")
        entry = {"choice": _check_choice(choice, f"record({op_key!r}, {shape_class!r})"), **detail}
        json.dumps(entry)  # TypeError now, naming nothing half-written, if a detail is not JSON-able
        self.entries.setdefault(op_key, {})[shape_class] = entry

    def copy(self) -> TuningCache:
        """A copy to record into (what :func:`load` returns is shared by every lookup)."""
        return TuningCache(self.key, self.path, json.loads(json.dumps(self.entries)))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "key": self.key.to_json(), "entries": self.entries}

    def save(self) -> Path:
        """Write the cache atomically (a reader sees the old file or the new one, never a part)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return self.path


def parse(doc: Any, key: CacheKey, path: Path) -> TuningCache:
    """A cache from its JSON; ValueError saying what is malformed. A well-formed cache of another key
    comes back empty (it is stale for this device and build)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tuning cache of format {FORMAT}")
    entries = doc.get("entries")
    if not isinstance(entries, dict) or not all(
        isinstance(per_op, dict) and all(isinstance(e, dict) and "choice" in e for e in per_op.values())
        for per_op in entries.values()
    ):
        raise ValueError(f"{path}: 'entries' must map op -> shape class -> {{'choice': ...}}")
    for op_key, per_op in entries.items():
        for shape_class, entry in per_op.items():
            _check_choice(entry["choice"], f"{path}: {op_key}/{shape_class}")
    if doc.get("key") != key.to_json():
        return TuningCache(key, path)
    return TuningCache(key, path, entries)


@lru_cache(maxsize=16)
def _read(path: Path, stamp: tuple[int, int, int], key: CacheKey) -> TuningCache:
    try:
        return parse(json.loads(path.read_text()), key, path)
    except (OSError, ValueError) as exc:
        warnings.warn(f"tuning cache ignored: {exc}; rerun `make tune` or delete it", stacklevel=3)
        return TuningCache(key, path)


def load(device: Any, manifest: Manifest) -> TuningCache:
    """The cache of this device and build (empty if there is none, it is stale, or it is unreadable)."""
    key = CacheKey.of(device, manifest)
    path = cache_path(manifest, key.device)
    try:
        st = path.stat()
    except OSError:
        return TuningCache(key, path)
    # the inode too: every save renames a new file into place, even within one mtime tick
    return _read(path, (st.st_ino, st.st_mtime_ns, st.st_size), key)


def lookup(device: Any, manifest: Manifest, op_key: str, shape_class: str) -> Choice | None:
    """The tuned choice of `op_key` for `shape_class` on this device and build, or None (no cache, no
    entry, tuning disabled). The caller still checks that the variant exists and fits."""
    if not enabled():
        return None
    return load(device, manifest).lookup(op_key, shape_class)
