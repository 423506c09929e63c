"""Where a build reads from and writes to. Stdlib only (the no-op fast path uses it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
