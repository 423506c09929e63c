"""Property tests of every variant in the manifest against the NumPy reference.

Parametrized by the manifest: a variant added to variants.yaml is tested here with no edit.
Levels: im2col alone (exact), GEMM alone (exact accumulators, +-1 after requantization), whole op
(+-1). Every output buffer carries guard bands. A failure prints a one-line repro command and an
`@example(...)` line.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.device import default_device
from runtime.manifest import load_manifest
from runtime.select import device_unfit
from runtime.verify import LEVELS_BY_ROLE, VerificationError, check, repro_command
from tests import strategies
from tests.conftest import EXAMPLES, FIRST_FAILURE

MANIFEST = load_manifest()


def accepted_layouts(entry: dict[str, Any]) -> list[str]:
    layout = entry["axes"].get("input_layout")
    return sorted(MANIFEST.layouts) if layout in (None, "generic") else [layout]


def _params(level: str) -> list[Any]:
    out = []
    for name, entry in MANIFEST.variants.items():
        if level in LEVELS_BY_ROLE.get(entry["role"], ()):
            out.append(pytest.param(name, id=name))
    return out


def _require_device_support(variant: str) -> None:
    device = default_device()
    missing = device.supports(MANIFEST.variants[variant]["features"])
    if missing:
        pytest.skip(f"{variant}: device {device.info.name!r} lacks {', '.join(missing)}")
    unfit = device_unfit(MANIFEST.variants[variant], device)
    if unfit:
        pytest.skip(f"{variant}: cannot run on {device.info.name!r}: {unfit}")


def run_check(level: str, variant: str, case: dict[str, Any]) -> None:
    key = (level, variant)
    EXAMPLES[key] += 1
    try:
        check(level, variant, case)
    except VerificationError as exc:
        FIRST_FAILURE.setdefault(key, EXAMPLES[key])
        raise VerificationError(
            f"{exc}\n  rerun: {repro_command(level, variant, case)}\n"
            f"  example: @example(case={json.dumps(case, sort_keys=True)})"
        ) from None


@pytest.mark.parametrize("variant", _params("im2col"))
@given(data=st.data())
def test_im2col_exact(variant: str, data: st.DataObject) -> None:
    _require_device_support(variant)
    case = data.draw(strategies.conv_cases(accepted_layouts(MANIFEST.variants[variant])), label="case")
    run_check("im2col", variant, case)


@pytest.mark.parametrize("variant", _params("gemm"))
@given(case=strategies.conv_cases())
def test_gemm_exact_accumulators_and_requant(variant: str, case: dict[str, Any]) -> None:
    _require_device_support(variant)
    run_check("gemm", variant, case)


@pytest.mark.parametrize("variant", _params("conv"))
@given(data=st.data())
def test_conv_within_one(variant: str, data: st.DataObject) -> None:
    _require_device_support(variant)
    entry = MANIFEST.variants[variant]
    layouts = accepted_layouts(entry) if entry["role"] == "im2col" else sorted(MANIFEST.layouts)
    case = data.draw(strategies.conv_cases(layouts), label="case")
    run_check("conv", variant, case)


# bench roofline probes (runtime/verify_bench.py): fewer workgroups than elements exercises the
# copy's stride loop; "extremes" seeds drive the dot chains into saturation / wrap-around.
bench_copy_cases = st.fixed_dictionaries(
    {"n": st.integers(1, 3000), "groups": st.integers(1, 64), "tail": st.integers(0, 8), "seed": strategies.seeds}
)
bench_dot_peak_cases = st.fixed_dictionaries(
    {"groups": st.integers(1, 4), "iters": st.integers(0, 40), "values": st.sampled_from(["random", "extremes"]),
     "seed": strategies.seeds}
)


@pytest.mark.parametrize("variant", _params("bench_copy"))
@given(case=bench_copy_cases)
def test_bench_copy_exact(variant: str, case: dict[str, Any]) -> None:
    _require_device_support(variant)
    run_check("bench_copy", variant, case)


@pytest.mark.parametrize("variant", _params("bench_dot_peak"))
@given(case=bench_dot_peak_cases)
def test_bench_dot_peak_matches_numpy(variant: str, case: dict[str, Any]) -> None:
    _require_device_support(variant)
    run_check("bench_dot_peak", variant, case)


def test_every_variant_is_covered() -> None:
    uncovered = [n for n, e in MANIFEST.variants.items() if e["role"] not in LEVELS_BY_ROLE]
    assert not uncovered, f"variants with no property test (role has no levels): {uncovered}"
    assert MANIFEST.variants, "the manifest holds no variants"


# float family (runtime/verify_float.py): im2col bit-exact, GEMM exact on integers and within the
# K * eps tolerance otherwise, whole op within tolerance; float16 variants skip (by name) on a
# device without shaderFloat16 / 16-bit storage.
@pytest.mark.parametrize("variant", _params("float_im2col"))
@given(data=st.data())
def test_float_im2col_exact(variant: str, data: st.DataObject) -> None:
    _require_device_support(variant)
    case = data.draw(strategies.float_cases(accepted_layouts(MANIFEST.variants[variant])), label="case")
    run_check("float_im2col", variant, case)


@pytest.mark.parametrize("variant", _params("float_gemm"))
@given(case=strategies.float_cases())
def test_float_gemm_exact_and_within_tolerance(variant: str, case: dict[str, Any]) -> None:
    _require_device_support(variant)
    run_check("float_gemm", variant, case)


@pytest.mark.parametrize("variant", _params("float_conv"))
@given(data=st.data())
def test_float_conv_within_tolerance(variant: str, data: st.DataObject) -> None:
    _require_device_support(variant)
    entry = MANIFEST.variants[variant]
    layouts = accepted_layouts(entry) if entry["role"] == "float_im2col" else sorted(MANIFEST.layouts)
    case = data.draw(strategies.float_cases(layouts), label="case")
    run_check("float_conv", variant, case)
