"""Fixed cases for every q8ta_dwconv variant x input layout it reads (the property tests add random ones).

Each case goes through the family's dwconv level: exact accumulators through identity
requantization, then +-1 after requantization, with guard bands around the output and garbage in
the input layout's padding bytes. Together the cases take every tap-loop path of the templates:
the unrolled 3x3 stride 1 and stride 2 ones and the general one.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.manifest import load_manifest
from runtime.families.q8ta_dwconv.checks import accepted_layouts
from runtime.tools.check import check, levels_of
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
BASE: dict[str, Any] = {
    "x_scale": 0.05, "w_scale_range": [0.001, 0.02], "out_scale_factor": 1.0, "bias": True, "bias_scale": 1.0,
    "activation": "none", "x_values": "random", "w_values": "random", "dilation": [1, 1],
}
CASES = {
    # MobileNetV2-like, unrolled stride 1: C not a multiple of 4, odd sizes, relu
    "3x3s1": dict(BASE, N=1, C=10, H=7, W=9, KH=3, KW=3, stride=[1, 1], padding=[1, 1], x_zp=-3, out_zp=4,
                  activation="relu", seed=21),
    # unrolled stride 2, batch 2, no bias, dilation along H (the unrolled loops take it)
    "3x3s2": dict(BASE, N=2, C=13, H=9, W=11, KH=3, KW=3, stride=[2, 2], padding=[2, 1], dilation=[2, 1],
                  x_zp=5, out_zp=-7, bias=False, seed=22),
    # general loop: non-square kernel, per-axis stride/padding/dilation, extreme zero points and values
    "general": dict(BASE, N=1, C=5, H=6, W=5, KH=2, KW=5, stride=[1, 3], padding=[0, 2], dilation=[2, 1],
                    x_zp=127, out_zp=-128, x_values="extremes", w_values="extremes", seed=23),
    # several workgroups along channels (C4 = 9) and width tiles; kernel wider than the input (padding)
    "wide": dict(BASE, N=1, C=33, H=3, W=40, KH=5, KW=3, stride=[1, 1], padding=[2, 1], x_zp=0, out_zp=0,
                 out_scale_factor=0.3, seed=24),
}


def _params() -> list[Any]:
    return [pytest.param(name, layout, case, id=f"{name}-{layout}-{case}")
            for name, entry in MANIFEST.variants.items() if entry.role == "dwconv"
            for layout in accepted_layouts(entry, MANIFEST) for case in CASES]


@pytest.mark.parametrize(("variant", "layout", "case"), _params())
def test_fixed_case(variant: str, layout: str, case: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    levels = levels_of(variant)
    assert [lv.name for lv in levels] == ["dwconv"]
    check("dwconv", variant, dict(CASES[case], layout=layout))


def test_every_int8_layout_is_read_by_some_dwconv_variant() -> None:
    read = {layout for e in MANIFEST.entries(role="dwconv") for layout in accepted_layouts(e, MANIFEST)}
    assert read == set(MANIFEST.layouts)


def test_specialized_templates_cover_the_word_layouts() -> None:
    """4w4c and 4c (conv2d_q8's default and the output layout) have word-indexed variants."""
    specialized = {e.axes["input_layout"] for e in MANIFEST.entries(role="dwconv")} - {"generic"}
    assert {"4w4c", "4c"} <= specialized
