"""Host side of q8_rowsum: pack the rows, one run_variant call, nothing else."""

from __future__ import annotations

import numpy as np

from runtime.core.device import Device
from runtime.core.invoke import device_of, run_variant
from runtime.core.manifest import VariantEntry, load_manifest
from runtime.oplib import validate

ROLE = "rowsum"
WORKGROUPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # the shader's tree reduction wants a power of two


def pack_rows(a: np.ndarray) -> tuple[np.ndarray, int]:
    """(rows, cols) int8 -> int32 words, each row padded to whole words with zeros; and words per row."""
    rows, cols = a.shape
    row_words = -(-cols // 4)
    padded = np.zeros((rows, row_words * 4), np.int8)
    padded[:, :cols] = a
    return padded.view("<i4").astype(np.int32).reshape(-1), row_words


def rowsum_entry(variant: str | None = None) -> VariantEntry:
    manifest = load_manifest()
    names = manifest.names(role=ROLE)
    if variant is None:
        if not names:
            raise ValueError(f"no {ROLE} variant in {manifest.path}; run `make shaders`")
        return manifest.variant(names[0])
    validate.choice(variant, "variant", names)
    return manifest.variant(variant)


def rowsum_q8(
    a: np.ndarray, *, scale: int = 1, workgroup: int = 64, variant: str | None = None, device: Device | None = None,
    guard: bool = False,
) -> np.ndarray:
    """int32 (rows,) sums of each row of the int8 (rows, cols) matrix `a`, times `scale` (wrapping).

    `workgroup` (a power of two up to 256) is the shader's local size, a specialization constant.
    """
    a = validate.int8_array(a, "a", 2)
    scale_i = validate.int32(scale, "scale")
    if isinstance(workgroup, bool) or workgroup not in WORKGROUPS:
        raise ValueError(f"workgroup must be one of {WORKGROUPS}, got {workgroup!r}")
    rows, cols = a.shape
    words, row_words = pack_rows(a)
    dev = device_of(device)
    limit = int(dev.info.limits["maxComputeWorkGroupCount"][0])
    groups = (min(rows, limit), -(-rows // limit), 1)
    out = run_variant(
        rowsum_entry(variant), {"t_rows": words}, {"t_sums": ((rows,), np.int32)},
        push={"rows": rows, "cols": cols, "row_words": row_words},
        spec={"local_size_x": workgroup, "SCALE": scale_i}, groups=groups, device=dev, guard=guard,
    )
    return out["t_sums"]

