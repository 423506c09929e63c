"""runtime.conv2d_float end to end, its reference, its layouts and its feature gating.

The per-variant property checks live in tests/test_properties.py (levels float_im2col,
float_gemm, float_conv); bad arguments in tests/test_bad_inputs.py. This file covers what those
do not: the public signature and defaults, the reference against plain loops, element-offset
layouts, and float16 on a device that lacks it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device
from runtime.core.errors import MissingFeatureError
from runtime.core.layouts import BUILTIN_LAYOUTS, builtin_layout
from runtime.core.manifest import load_manifest
from runtime.families.f_conv2d import oracle as reference_float
from runtime.families.f_conv2d.checks import tolerance
from runtime.families.f_conv2d.op import run_conv2d_float
from runtime.oplib.gemm_formats import matrix_float_elements, pack_matrix_float, unpack_matrix_float

MANIFEST = load_manifest()
FLOAT16 = sorted(n for n, v in MANIFEST.variants.items()
                 if v.role in ("float_im2col", "float_gemm") and v.axes["dtype"] == "float16")


def _case(seed: int, groups: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((2, 3 * groups, 7, 6)),
        "weight": rng.standard_normal((2 * groups, 3, 3, 2)),
        "bias": rng.standard_normal(2 * groups),
        "stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": groups,
    }


def _loops(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int], groups: int) -> np.ndarray:
    """conv2d as nested Python loops: an independent check of reference_float."""
    n_, _, h, wd = x.shape
    c_out, cg, kh_, kw_ = w.shape
    ho_ = (h + 2 * padding[0] - dilation[0] * (kh_ - 1) - 1) // stride[0] + 1
    wo_ = (wd + 2 * padding[1] - dilation[1] * (kw_ - 1) - 1) // stride[1] + 1
    out = np.zeros((n_, c_out, ho_, wo_))
    for n, oc, oh, ow in itertools.product(range(n_), range(c_out), range(ho_), range(wo_)):
        g = oc // (c_out // groups)
        acc = 0.0 if b is None else float(b[oc])
        for c, ki, kj in itertools.product(range(cg), range(kh_), range(kw_)):
            ih = oh * stride[0] - padding[0] + ki * dilation[0]
            iw = ow * stride[1] - padding[1] + kj * dilation[1]
            if 0 <= ih < h and 0 <= iw < wd:
                acc += float(x[n, g * cg + c, ih, iw]) * float(w[oc, c, ki, kj])
        out[n, oc, oh, ow] = acc
    return out


@pytest.mark.parametrize("groups", [1, 2])
def test_reference_matches_plain_loops(groups: int) -> None:
    case = _case(1, groups)
    x, w, b = case.pop("x"), case.pop("weight"), case.pop("bias")
    value, magnitude = reference_float.conv2d_float_reference(x, w, b, **case)
    np.testing.assert_allclose(value, _loops(x, w, b, **case), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(magnitude, _loops(np.abs(x), np.abs(w), np.abs(b), **case), rtol=1e-12, atol=1e-12)
    # the im2col + GEMM formulation agrees with the tap-by-tap one
    a, _ = reference_float.im2col(x, w.shape[2], w.shape[3], case["stride"], case["padding"], case["dilation"], groups)
    mat, _ = reference_float.gemm(a, w, b, groups)
    N, Ho, Wo = x.shape[0], value.shape[2], value.shape[3]
    nchw = mat.reshape(groups, N, Ho, Wo, -1).transpose(1, 0, 4, 2, 3).reshape(value.shape)
    np.testing.assert_allclose(nchw, value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", sorted(MANIFEST.layouts))
def test_conv2d_float_matches_reference(dtype: str, layout: str) -> None:
    case = _case(2, groups=2)
    out = runtime.conv2d_float(case.pop("x"), case.pop("weight"), case.pop("bias"), **case, activation="relu",
                               input_layout=layout, dtype=dtype)
    case = _case(2, groups=2)
    x, w, b = (case.pop(k).astype(dtype) for k in ("x", "weight", "bias"))  # the op casts first
    want, magnitude = reference_float.conv2d_float_reference(x, w, b, **case, activation="relu")
    assert out.dtype == np.dtype(dtype) and out.shape == want.shape == (2, 4, 4, 8)
    Kp = w.shape[2] * w.shape[3] * 4
    assert np.all(np.abs(out.astype(np.float64) - want) <= tolerance(magnitude, want, Kp, dtype))


def test_defaults_contig_float32_and_picks() -> None:
    """Defaults are contig input and float32; a specialized im2col is preferred where one exists."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 4, 5, 5)).astype(np.float32), rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    out = runtime.conv2d_float(x, w, None)
    want, magnitude = reference_float.conv2d_float_reference(x, w, None)
    assert out.dtype == np.float32 and np.all(np.abs(out - want) <= tolerance(magnitude, want, 36, "float32"))
    run = run_conv2d_float(x, w, None)
    assert run.im2col_variant.startswith("f_im2col_generic_float32")
    run = run_conv2d_float(x, w, None, input_layout="4c", dtype="float16", keep_im2col=True)
    assert run.im2col_variant.startswith("f_im2col_4c_float16") and "float16" in run.gemm_variant
    a, _ = reference_float.im2col(x.astype(np.float16), 3, 3, 1, 0, 1, 1)
    assert run.im2col_matrix is not None and np.array_equal(run.im2col_matrix, a)


def test_inputs_are_cast_to_dtype_first() -> None:
    """float64 inputs that float16 cannot hold exactly give the conv of their float16 roundings."""
    x = np.full((1, 1, 1, 1), 1 + 2.0**-13)  # rounds to 1.0 in float16
    w = np.full((1, 1, 1, 1), 3.0)
    assert runtime.conv2d_float(x, w, None, dtype="float16")[0, 0, 0, 0] == np.float16(3.0)
    assert runtime.conv2d_float(x, w, None, dtype="float32")[0, 0, 0, 0] == np.float32(3 * (1 + 2.0**-13))


def test_float16_needs_its_features() -> None:
    """Every float16 variant declares shaderFloat16 + 16-bit storage (so the property tests skip it by
    name where they are missing); on such a device the op refuses float16 and still runs float32."""
    assert FLOAT16
    for name in FLOAT16:
        assert {"shaderFloat16", "storageBuffer16BitAccess"} <= set(MANIFEST.variants[name].features), name
    case = _case(4)
    x, w, b = case.pop("x"), case.pop("weight"), case.pop("bias")
    with Device(mask_features=["shaderFloat16"]) as dev:
        assert all("shaderFloat16" in dev.supports(MANIFEST.variants[n].features) for n in FLOAT16)
        with pytest.raises(MissingFeatureError) as err:
            runtime.conv2d_float(x, w, b, **case, dtype="float16", device=dev)
        assert err.value.feature == "shaderFloat16" and err.value.variant in FLOAT16
        out = runtime.conv2d_float(x, w, b, **case, dtype="float32", device=dev)
        want, magnitude = reference_float.conv2d_float_reference(x.astype(np.float32), w.astype(np.float32),
                                                                 b.astype(np.float32), **case)
        assert np.all(np.abs(out - want) <= tolerance(magnitude, want, 24, "float32"))


@pytest.mark.parametrize("name", sorted(BUILTIN_LAYOUTS))
def test_element_offsets_round_trip_and_match_byte_offsets(name: str) -> None:
    layout = builtin_layout(name)
    shape = (2, 5, 3, 6)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float16)
    assert np.array_equal(layout.element_offsets(shape), layout.byte_offsets(shape))
    packed = layout.pack_elements(x, pad_value=None, rng=np.random.default_rng(6))
    assert packed.dtype == np.float16 and packed.size % 4 == 0 and packed.size >= layout.slots(shape)
    assert np.array_equal(layout.unpack_elements(packed, shape), x)
    # every slot that holds no element is poison (NaN, inf or +-max), never a plausible value
    unused = np.ones(packed.size, bool)
    unused[layout.element_offsets(shape).ravel()] = False
    poison = packed[unused].astype(np.float64)
    assert np.all(~np.isfinite(poison) | (np.abs(poison) == float(np.finfo(np.float16).max)))


def test_float_matrix_format_is_mat4_blocks() -> None:
    """Element ((g*M4 + m//4)*K4 + k//4)*16 + (m%4)*4 + k%4: a mat4 per block, column = row."""
    G, M, Kp = 2, 9, 12
    a = np.arange(G * M * Kp, dtype=np.float32).reshape(G, M, Kp)
    flat = pack_matrix_float(a)
    assert flat.size == matrix_float_elements(G, M, Kp) == G * 3 * 3 * 16
    for g, m, k in itertools.product(range(G), range(M), range(Kp)):
        assert flat[((g * 3 + m // 4) * 3 + k // 4) * 16 + (m % 4) * 4 + k % 4] == a[g, m, k]
    assert np.array_equal(unpack_matrix_float(flat, G, M, Kp), a)
