"""q8_rowsum, the plain-GLSL family: fixed cases, bad arguments, and that no template is involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.families.q8_rowsum.oracle import rowsum

REPO = Path(__file__).resolve().parents[3]


def test_variant_is_the_file_verbatim() -> None:
    entry = load_manifest().variant("q8_rowsum")
    assert entry.template == "q8_rowsum/rowsum.comp" and entry.role == "rowsum"
    rendered = (load_manifest().path.parent / "glsl" / "q8_rowsum.comp").read_text()
    assert rendered == (REPO / "templates" / "q8_rowsum" / "rowsum.comp").read_text()


@pytest.mark.parametrize(("rows", "cols", "wg"), [(1, 1, 1), (3, 5, 2), (70, 1031, 64), (5, 8, 256)])
def test_fixed_cases(rows: int, cols: int, wg: int) -> None:
    a = np.random.default_rng(rows * cols).integers(-128, 128, (rows, cols), dtype=np.int8)
    np.testing.assert_array_equal(runtime.rowsum_q8(a, workgroup=wg, scale=3), rowsum(a, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"a": np.zeros((2, 2), np.int16)}, TypeError, ["a", "int8"]),
        ({"a": np.zeros(4, np.int8)}, ValueError, ["a", "2 dimensions"]),
        ({"workgroup": 48}, ValueError, ["workgroup", "48"]),
        ({"scale": 2**31}, ValueError, ["scale", "int32"]),
        ({"scale": 1.5}, TypeError, ["scale"]),
        ({"variant": "nope"}, ValueError, ["variant", "q8_rowsum"]),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, words: list[str]) -> None:  # type: ignore[type-arg]
    args = {"a": np.zeros((2, 3), np.int8), **kwargs}
    with pytest.raises(error) as err:
        runtime.rowsum_q8(**args)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
