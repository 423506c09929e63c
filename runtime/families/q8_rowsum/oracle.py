"""NumPy oracle of q8_rowsum (NumPy only)."""

from __future__ import annotations

import numpy as np


def rowsum(a: np.ndarray, scale: int = 1) -> np.ndarray:
    """int32 row sums of an int8 matrix times `scale`, wrapping like int32 shader arithmetic."""
    sums = np.asarray(a, dtype=np.int64).sum(axis=1) * int(scale)
    return ((sums + 2**31) % 2**32 - 2**31).astype(np.int32)
