"""NumPy oracle of the bench probes: what the dot-peak loop computes (NumPy only; a copy needs none)."""

from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def dot_peak_reference(seeds: np.ndarray, tile: tuple[int, int], threads: int, iters: int, saturate: bool,
                       first: int = 0) -> np.ndarray:
    """What threads first .. first+threads-1 of the dot-peak shader write, computed the same way in NumPy.

    With (rows, cols) = tile and n = rows*cols: acc[r][c] starts at seeds[r*cols + c] ^ thread,
    a[r] = seeds[n + r] ^ thread, b[c] = seeds[n + rows + c]. Each step adds the dot product of the
    signed bytes of a[r] and b[c] to acc[r][c], saturating (OpSDotAccSat) or wrapping (OpSDot + add,
    the integer fallback), then rotates a by one; the result is the XOR of the final accumulators.
    """
    rows, cols = tile
    n = rows * cols
    seeds = np.asarray(seeds, dtype=np.int32)
    tid = np.arange(first, first + threads, dtype=np.int32)[:, None]
    acc = (seeds[None, :n] ^ tid).astype(np.int64).reshape(threads, rows, cols)
    a = (seeds[None, n : n + rows] ^ tid).view(np.int8).reshape(threads, rows, 4).astype(np.int64)
    b = seeds[n + rows : n + rows + cols].view(np.int8).reshape(cols, 4).astype(np.int64)
    for _ in range(iters):
        total = acc + np.einsum("trk,ck->trc", a, b)
        if saturate:
            acc = np.clip(total, INT32_MIN, INT32_MAX)
        else:
            acc = (total + 2**31) % 2**32 - 2**31  # two's complement wrap-around
        a = np.roll(a, -1, axis=1)
    return np.bitwise_xor.reduce(acc.reshape(threads, n).astype(np.int32), axis=1)
