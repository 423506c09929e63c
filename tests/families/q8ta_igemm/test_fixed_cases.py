"""Fixed cases for every q8ta_igemm variant x input layout it reads (the property tests add random ones).

Each case goes through the family's igemm level: exact accumulators through identity requantization,
then +-1 only next to a rounding tie, with guard bands around the output and garbage in the input
layout's padding bytes. Together they take both gather paths of the staged loader (a K step inside one
tap, and the stepped tap search of small channel counts), the register-tile loop, groups, stride,
dilation and padding per axis with a non-zero x_zp, C_in % 4 != 0, and a K split over workgroups.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.manifest import load_manifest
from runtime.families.q8ta_igemm.op import k_step
from runtime.oplib.cells import input_layouts
from runtime.tools.check import check, levels_of
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
BASE: dict[str, Any] = {
    "x_scale": 0.05, "w_scale_range": [0.001, 0.02], "out_scale_factor": 1.0, "bias": True, "bias_scale": 1.0,
    "activation": "none", "x_values": "random", "w_values": "random", "dilation": [1, 1], "groups": 1,
}
CASES = {
    # dense 3x3 'same', C_in % 4 != 0 (the last channel word is part padding), non-zero x_zp in the padding
    "3x3-cin-tail": dict(BASE, N=1, C_in=13, C_out=11, H=7, W=9, KH=3, KW=3, stride=[1, 1], padding=[1, 1],
                         x_zp=-3, out_zp=4, activation="relu", seed=31),
    # two groups of 5 channels (a group starting mid-word), stride 2, per-axis padding and dilation, batch 2
    "grouped-s2-dilated": dict(BASE, N=2, C_in=10, C_out=6, groups=2, H=9, W=11, KH=3, KW=2, stride=[2, 2],
                               padding=[2, 1], dilation=[2, 1], x_zp=5, out_zp=-7, bias=False, seed=32),
    # depthwise (one channel per group), extreme values and zero points, kernel wider than the input
    "depthwise-extremes": dict(BASE, N=1, C_in=6, C_out=6, groups=6, H=4, W=5, KH=2, KW=7, stride=[1, 3],
                               padding=[0, 3], dilation=[2, 1], x_zp=127, out_zp=-128, x_values="extremes",
                               w_values="extremes", seed=33),
    # 64 channels (whole one-tap K steps), output channels over two 64-wide tiles, K split in 3 where it can be
    "wide-split": dict(BASE, N=2, C_in=64, C_out=72, H=6, W=7, KH=3, KW=3, stride=[1, 1], padding=[1, 1],
                       x_zp=-7, out_zp=2, out_scale_factor=0.3, seed=34, split_k=3),
}


def _params() -> list[Any]:
    return [pytest.param(name, layout, case, id=f"{name}-{layout}-{case}")
            for name, entry in MANIFEST.variants.items() if entry.role == "igemm"
            for layout in input_layouts(entry, MANIFEST) or [] for case in CASES]


@pytest.mark.parametrize(("variant", "layout", "case"), _params())
def test_fixed_case(variant: str, layout: str, case: str) -> None:
    entry = MANIFEST.variants[variant]
    require_device_support(entry)
    assert [lv.name for lv in levels_of(variant)] == ["igemm"]
    fixed = dict(CASES[case], layout=layout)
    if not k_step(entry):
        fixed.pop("split_k", None)  # the register-tile template has no K split
    check("igemm", variant, fixed)


def test_every_int8_layout_is_read_by_some_igemm_variant() -> None:
    read = {layout for e in MANIFEST.entries(role="igemm") for layout in input_layouts(e, MANIFEST) or []}
    assert read == set(MANIFEST.layouts)


def test_both_loaders_and_a_tensor_core_template_exist() -> None:
    """The register tile, the staged (K-splitting) tile and the tensor-core template, each with a
    word-indexed 4w4c reader (conv2d_q8's default layout) and a generic one."""
    entries = MANIFEST.entries(role="igemm")
    for kind in (lambda e: e.axes.get("stage") is False, lambda e: e.axes.get("stage") is True,
                 lambda e: isinstance(e.axes.get("coop"), dict)):
        layouts = {e.axes["input_layout"] for e in entries if kind(e)}
        assert {"4w4c", "generic"} <= layouts, layouts
    assert all(k_step(e) for e in entries if e.axes.get("stage") or "coop" in e.axes)
