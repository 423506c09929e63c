"""Fixed cases for every int8 layout x variant (the property tests add random ones).

Each case goes through the family's checks at every level its variant's role is checked at: im2col
exact, GEMM accumulators exact and +-1 after requantization, the whole op +-1, all with guard
bands and garbage in the layouts' padding bytes.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.manifest import VariantEntry, load_manifest
from runtime.families.q8ta_conv2d import FAMILY
from runtime.families.q8ta_conv2d.checks import accepted_layouts
from runtime.tools.check import check
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
BASE: dict[str, Any] = {
    "x_scale": 0.05, "w_scale_range": [0.001, 0.02], "out_scale_factor": 1.0, "bias": True, "bias_scale": 1.0,
    "activation": "none", "x_values": "random", "w_values": "random",
}
CASES = {
    # odd sizes, C not a multiple of 4, per-axis stride/padding, batch 2
    "dense": dict(BASE, N=2, C_in=5, C_out=7, H=7, W=6, KH=3, KW=2, stride=[1, 2], padding=[1, 0],
                  dilation=[1, 1], groups=1, x_zp=-3, out_zp=4, seed=11),
    # 3 groups of 2 input / 3 output channels, dilation along H, stride 2
    "grouped": dict(BASE, N=1, C_in=6, C_out=9, H=5, W=9, KH=3, KW=3, stride=[2, 2], padding=[1, 1],
                    dilation=[2, 1], groups=3, x_zp=127, out_zp=-128, seed=12),
    # depthwise with relu, extreme zero point and values, kernel wider than the input without padding
    "depthwise": dict(BASE, N=1, C_in=8, C_out=8, H=6, W=2, KH=3, KW=3, stride=[1, 1], padding=[1, 1],
                      dilation=[1, 1], groups=8, x_zp=-128, out_zp=0, activation="relu", x_values="extremes",
                      seed=13),
}


def _reads(entry: VariantEntry) -> list[str]:
    return accepted_layouts(entry, MANIFEST)


def _params() -> list[Any]:
    out = []
    for name, entry in MANIFEST.variants.items():
        if entry.role not in ("im2col", "gemm"):
            continue
        layouts = _reads(entry) if entry.role == "im2col" else ["4w4c"]
        for layout in layouts:
            for case in CASES:
                out.append(pytest.param(name, layout, case, id=f"{name}-{layout}-{case}"))
    return out


@pytest.mark.parametrize(("variant", "layout", "case"), _params())
def test_fixed_case(variant: str, layout: str, case: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    # this family's levels only: other families check the GEMM variants with cases of their own
    for level in FAMILY.levels_for(MANIFEST.variants[variant].role):
        check(level.name, variant, dict(CASES[case], layout=layout))


def test_every_int8_layout_is_read_by_some_im2col_variant() -> None:
    read = {layout for e in MANIFEST.entries(role="im2col") for layout in _reads(e)}
    assert read == set(MANIFEST.layouts)
