"""The coopmat-peak oracle against a literal step-by-step replay of the shader's loop (NumPy int64)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.core.manifest import load_manifest
from runtime.families.bench_probes.op import (
    coopmat_peak_ops,
    coopmat_peak_seeds,
    coopmat_peak_shape,
    coopmat_peak_subgroups,
    coopmat_peak_tiles,
    coopmat_peak_words,
)
from runtime.families.bench_probes.oracle import coopmat_peak_reference

MANIFEST = load_manifest()
VARIANTS = MANIFEST.names(role="bench_coopmat_peak")


def _replay(a: np.ndarray, b: np.ndarray, starts: np.ndarray, iters: int, sg: int) -> np.ndarray:
    """What the shader does, one MMA at a time, for subgroup `sg`."""
    ta, tb = a.shape[0], b.shape[0]
    tiles = [a[i].astype(np.int64) for i in range(ta)]
    acc = {(i, j): np.full((a.shape[1], b.shape[2]), int(starts[i * tb + j]) ^ sg, np.int64)
           for i in range(ta) for j in range(tb)}
    for _ in range(iters):
        for (i, j), c in acc.items():
            c += tiles[i] @ b[j].astype(np.int64)
        for (i, j), c in acc.items():
            c += tiles[i] @ -b[j].astype(np.int64)
            assert np.abs(c).max() < 2**31  # the pair cancels: no overflow whatever the run length
        tiles = tiles[1:] + tiles[:1]
    total = sum(acc[i, j] + tiles[i] @ b[j].astype(np.int64) for i in range(ta) for j in range(tb))
    return np.asarray(total).astype(np.int32)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("iters", [0, 1, 2, 3, 5])
def test_oracle_is_the_loop(variant: str, iters: int) -> None:
    entry = MANIFEST.variant(variant)
    a, b, starts = coopmat_peak_seeds(np.random.default_rng(iters), entry)
    m, n, k = coopmat_peak_shape(entry)
    assert a.shape[1:] == (m, k) and b.shape[1:] == (k, n) and b.min() >= -127  # -B must be an int8 too
    want = coopmat_peak_reference(a, b, starts, iters, 3, first=5)
    for s in range(3):
        np.testing.assert_array_equal(want[s], _replay(a, b, starts, iters, 5 + s))


def test_seed_words_layout() -> None:
    entry = MANIFEST.variant(VARIANTS[0])
    a, b, starts = coopmat_peak_seeds(np.random.default_rng(0), entry)
    words = coopmat_peak_words(a, b, starts)
    ta, tb = coopmat_peak_tiles(entry)
    m, n, k = coopmat_peak_shape(entry)
    raw = words.view(np.int8)
    assert np.array_equal(raw[: a.size].reshape(a.shape), a)  # A row-major
    b_cols = raw[a.size : a.size + b.size].reshape(tb, n, k)  # B column by column
    assert np.array_equal(b_cols.transpose(0, 2, 1), b)
    assert np.array_equal(raw[a.size + b.size : a.size + 2 * b.size].reshape(tb, n, k).transpose(0, 2, 1), -b)
    assert np.array_equal(words[-ta * tb :].view(np.int32), starts)
    subgroups = coopmat_peak_subgroups(entry)
    assert coopmat_peak_ops(entry, subgroups, 10) == 2 * m * n * k * ta * tb * 21 * subgroups
