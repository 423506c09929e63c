"""Fixed cases for every quantize / dequantize variant x every layout it serves (the property tests
add random ones), through every level the variant is checked at: guard bands, garbage in the
output buffer and in int8 padding bytes, exact comparison outside the derived windows."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.manifest import load_manifest
from runtime.families.q8ta_quantize.checks import accepted_layouts
from runtime.tools.check import check, levels_of
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
ROLES = ("quantize", "dequantize")
# per level: odd shapes, C not a multiple of 4 (and 17 over 4 words), every way of handing x / q over
CASES: dict[str, dict[str, dict[str, Any]]] = {
    "quantize": {
        "mixed": dict(N=2, C=5, H=3, W=7, values="mixed", scale_mode="unit", zp_mode="extremes", residency="array",
                      seed=21),
        "ties": dict(N=1, C=17, H=2, W=5, values="ties", scale_mode="pow2", zp_mode="random", residency="packed",
                     seed=22),
        "huge-on-device": dict(N=3, C=3, H=1, W=9, values="huge", scale_mode="tiny", zp_mode="extremes",
                               residency="device", seed=23),
        "subnormal": dict(N=1, C=6, H=5, W=1, values="subnormal", scale_mode="bounds", zp_mode="random",
                          residency="array", seed=24),
    },
    "dequantize": {
        "random": dict(N=2, C=5, H=3, W=7, values="random", scale_mode="unit", zp_mode="extremes",
                       residency="array", packed_out=None, seed=31),
        "extremes-packed": dict(N=1, C=17, H=2, W=5, values="extremes", scale_mode="huge", zp_mode="random",
                                residency="packed", packed_out=True, seed=32),
        "min-on-device": dict(N=3, C=3, H=1, W=9, values="min", scale_mode="bounds", zp_mode="extremes",
                              residency="device", packed_out=None, seed=33),
    },
    "roundtrip": {
        "random": dict(N=2, C=5, H=3, W=7, values="random", scale_mode="fp16", zp_mode="random", seed=41),
        "extremes": dict(N=1, C=17, H=2, W=5, values="extremes", scale_mode="fp16", zp_mode="extremes", seed=42),
    },
}


def _params() -> list[Any]:
    out = []
    for name, entry in MANIFEST.variants.items():
        if entry.role not in ROLES:
            continue
        quants = ["per_channel", "per_tensor"] if entry.axes["quant"] == "per_channel" else ["per_tensor"]
        for layout in accepted_layouts(entry, MANIFEST):
            for quant in quants:
                out.append(pytest.param(name, layout, quant, id=f"{name}-{layout}-{quant}"))
    return out


@pytest.mark.parametrize(("variant", "layout", "quant"), _params())
def test_fixed_cases(variant: str, layout: str, quant: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    for level in levels_of(variant):
        for case in CASES[level.name].values():
            check(level.name, variant, dict(case, layout=layout, quant=quant))


def test_every_layout_is_served_both_ways() -> None:
    for role in ROLES:
        served = {lay for e in MANIFEST.entries(role=role) for lay in accepted_layouts(e, MANIFEST)}
        assert served == set(MANIFEST.layouts), role
