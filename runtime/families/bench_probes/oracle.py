"""NumPy oracle of the bench probes: what the dot-peak and coopmat-peak loops compute (NumPy only; a copy
needs none)."""

from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def dot_peak_reference(seeds: np.ndarray, tile: tuple[int, int], threads: int, iters: int, saturate: bool,
                       first: int = 0) -> np.ndarray:
    """What threads first .. first+threads-1 of the dot-peak shader write, computed the same way in NumPy.

    With (rows, cols) = tile and n = rows*cols: acc[r][c] starts at seeds[r*cols + c] ^ thread,
    a[r] = seeds[n + r] ^ thread, b[c] = seeds[n + rows + c]. Each step adds the dot product of the
    signed bytes of a[r] and b[c] to acc[r][c], saturating (OpSDotAccSat) or wrapping (OpSDot + add,
    the integer fallback), then adds 0x01010101 to every a word (int32, wrapping); the result is the XOR
    of the final accumulators.
    """
    rows, cols = tile
    n = rows * cols
    seeds = np.asarray(seeds, dtype=np.int32)
    tid = np.arange(first, first + threads, dtype=np.int32)[:, None]
    acc = (seeds[None, :n] ^ tid).astype(np.int64).reshape(threads, rows, cols)
    a_words = (seeds[None, n : n + rows] ^ tid).astype(np.int64)
    b = seeds[n + rows : n + rows + cols].view(np.int8).reshape(cols, 4).astype(np.int64)
    for _ in range(iters):
        a = a_words.astype(np.int32).view(np.int8).reshape(threads, rows, 4).astype(np.int64)
        total = acc + np.einsum("trk,ck->trc", a, b)
        if saturate:
            acc = np.clip(total, INT32_MIN, INT32_MAX)
        else:
            acc = (total + 2**31) % 2**32 - 2**31  # two's complement wrap-around
        a_words = (a_words + 0x01010101 + 2**31) % 2**32 - 2**31
    return np.bitwise_xor.reduce(acc.reshape(threads, n).astype(np.int32), axis=1)


def coopmat_peak_reference(a: np.ndarray, b: np.ndarray, starts: np.ndarray, iters: int, subgroups: int,
                           first: int = 0) -> np.ndarray:
    """The m x n int32 tile subgroups first .. first+subgroups-1 of the coopmat-peak shader write.

    a: (TA, m, k) int8 A tiles, b: (TB, k, n) int8 B tiles, starts: TA*TB start values. Accumulator
    (i, j) of subgroup s starts at starts[i*TB + j] ^ s; every step adds A[i] B[j] and A[i] (-B[j]),
    which cancel, then rotates the A tiles left by one; after `iters` steps one more A[i] B[j] is added
    (with A rotated, a[i] = A[(i + iters) % TA]) and the subgroup stores the sum of its accumulators.
    """
    ta, tb = a.shape[0], b.shape[0]
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    rotated = a64[(np.arange(ta) + iters) % ta]  # (TA, m, k)
    products = np.einsum("imk,jkn->mn", rotated, b64)  # sum over all (i, j) of A[(i+iters)%TA] @ B[j]
    sg = np.arange(first, first + subgroups, dtype=np.int64)[:, None]
    start_sum = (np.asarray(starts, np.int64).reshape(1, ta * tb) ^ sg).sum(axis=1)  # (subgroups,)
    total = products[None] + start_sum[:, None, None]
    return ((total + 2**31) % 2**32 - 2**31).astype(np.int32)  # int32 two's complement, as the shader adds
