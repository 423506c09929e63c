"""runtime.run_variant: any variant on NumPy arrays, by reflected binding / push / spec names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.manifest import load_manifest
from runtime.families.bench_probes.oracle import dot_peak_reference

MANIFEST = load_manifest()
COPY = next(n for n in MANIFEST.names(role="bench_copy"))
DOT_INT = next(n for n in MANIFEST.names(role="bench_dot_peak") if "_int_" in n)


def _copy(n_vec4: int = 10, **overrides: Any) -> dict[str, Any]:
    src = np.arange(4 * n_vec4, dtype=np.uint32) * 7 + 1
    kwargs: dict[str, Any] = {
        "inputs": {"t_src": src},
        "outputs": {"t_dst": ((4 * n_vec4,), np.uint32)},
        "push": {"n": n_vec4},
        "groups": 1,
    }
    kwargs.update(overrides)
    return kwargs


def test_copy_by_binding_names() -> None:
    src = np.arange(40, dtype=np.uint32) * 7 + 1
    out = runtime.run_variant(COPY, {"t_src": src}, {"t_dst": ((40,), np.uint32)}, push={"n": 10}, groups=1)
    assert list(out) == ["t_dst"]
    np.testing.assert_array_equal(out["t_dst"], src)


def test_copy_by_binding_numbers_and_array_to_fill() -> None:
    entry = MANIFEST.variant(COPY)
    out_no, in_no = entry.binding("t_dst").binding, entry.binding("t_src").binding
    src = np.arange(16, dtype=np.int32) - 8
    target = np.full((4, 4), 99, np.int32)
    got = runtime.run_variant(COPY, {in_no: src}, {out_no: target}, push={"n": 4}, groups=(1, 1, 1), guard=True)
    assert got[out_no] is target
    np.testing.assert_array_equal(target.reshape(-1), src)


def test_dot_peak_matches_oracle_with_spec_free_variant() -> None:
    entry = MANIFEST.variant(DOT_INT)
    rows, cols = entry.axes["tile"]["w"], entry.axes["tile"]["c"]
    threads = entry.local_size[0]
    seeds = np.random.default_rng(3).integers(-(2**31), 2**31 - 1, size=2 * rows * cols, dtype=np.int32)
    out = runtime.run_variant(entry, {1: seeds}, {0: ((threads,), np.int32)}, push={"args": (5, 0, 0, 0)}, groups=1)
    np.testing.assert_array_equal(out[0], dot_peak_reference(seeds, (rows, cols), threads, 5, saturate=False))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"inputs": {"t_nope": np.zeros(4, np.uint32)}}, ["no binding 't_nope'", "t_src", "t_dst"]),
        ({"inputs": {}}, ["no input or output given", "'t_src'"]),
        ({"inputs": {"t_src": np.zeros(40, np.uint8)}}, ["'t_src'", "uvec4", "4-byte items", "uint8"]),
        ({"inputs": {"t_src": np.zeros(3, np.uint32)}}, ["'t_src'", "16 bytes", "12"]),
        ({"outputs": {"t_dst": ((40,), np.float16)}}, ["'t_dst'", "4-byte items", "float16"]),
        ({"outputs": {"t_dst": (40, "no-such-dtype")}}, ["'t_dst'", "(shape, dtype)"]),
        ({"outputs": {"t_dst": 40}}, ["'t_dst'", "(shape, dtype)"]),
        ({"push": {"n": 10, "extra": 1}}, ["push constant", "'extra'", "'n'"]),
        ({"push": {}}, ["missing push constant", "'n'"]),
        ({"spec": {"NOPE": 1}}, ["specialization constant 'NOPE'"]),
        ({"groups": (1, 2, 3, 4)}, ["groups"]),
        ({"groups": -1}, ["groups"]),
        ({"inputs": {"t_src": [1, 2, 3]}}, ["'t_src'", "list"]),
    ],
)
def test_mismatches_name_the_binding(overrides: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        runtime.run_variant(COPY, **_copy(**overrides))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_binding_given_twice() -> None:
    entry = MANIFEST.variant(COPY)
    number = entry.binding("t_src").binding
    with pytest.raises(ValueError, match="given twice"):
        runtime.run_variant(COPY, {"t_src": np.zeros(4, np.uint32), number: np.zeros(4, np.uint32)},
                            {"t_dst": ((4,), np.uint32)}, push={"n": 1})


def test_unknown_variant_and_bad_types() -> None:
    with pytest.raises(ValueError, match="unknown variant 'bench_nope'"):
        runtime.run_variant("bench_nope", {}, {})
    with pytest.raises(TypeError, match="variant name or a VariantEntry"):
        runtime.run_variant(3, {}, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="device"):
        runtime.run_variant(COPY, **_copy(), device="gpu")  # type: ignore[arg-type]


def test_device_buffer_input_is_bound_as_is() -> None:
    dev = runtime.default_device()
    src = np.arange(8, dtype=np.uint32)
    with dev.upload(src) as buf:
        out = runtime.run_variant(COPY, {"t_src": buf}, {"t_dst": ((8,), np.uint32)}, push={"n": 2}, device=dev)
    np.testing.assert_array_equal(out["t_dst"], src)
