"""Fixed cases for every add / mul variant x every layout it serves (the property tests add random
ones): same-shape, per-channel, scalar and other broadcasts, b in another layout (generic), every way
of handing a and b over, saturation at both ends; guard bands and garbage padding throughout."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.manifest import load_manifest
from runtime.tools.check import check
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
LAYOUTS = sorted(MANIFEST.layouts)
BASE: dict[str, Any] = dict(a_scale=0.05, b_scale=0.02, a_zp=3, b_zp=-7, out_zp=1, out_scale_factor=1.0,
                            activation="none", a_values="random", b_values="random", packed_out=None)
CASES: dict[str, dict[str, Any]] = {
    "same": dict(BASE, N=2, C=5, H=3, W=7, broadcast="same", a_residency="array", b_residency="packed", seed=51),
    "channel-relu": dict(BASE, N=1, C=17, H=2, W=5, broadcast="channel", a_residency="device", b_residency="array",
                         activation="relu", seed=52),
    "scalar-saturating": dict(BASE, N=3, C=3, H=1, W=9, broadcast="scalar", a_residency="packed",
                              b_residency="array", a_values="extremes", out_scale_factor=1e-4, out_zp=-128,
                              packed_out=True, seed=53),
    "same-on-device": dict(BASE, N=1, C=8, H=4, W=4, broadcast="same", a_residency="device", b_residency="device",
                           a_values="min", b_values="max", a_zp=127, b_zp=-128, seed=54),
}
GENERIC_ONLY: dict[str, dict[str, Any]] = {
    "random-broadcast": dict(BASE, N=2, C=6, H=5, W=3, broadcast="random", a_residency="array", b_residency="device",
                             seed=55),
    "both-broadcast": dict(BASE, N=3, C=5, H=4, W=6, broadcast="both", a_residency="packed", b_residency="packed",
                           packed_out=False, seed=56),
}


def _params() -> list[Any]:
    out = []
    for name, entry in MANIFEST.variants.items():
        if entry.role != "binary_q8":
            continue
        layout = entry.axes["layout"]
        for i, a_layout in enumerate(LAYOUTS if layout == "generic" else [layout]):
            # the generic variant also reads b in a layout other than a's
            b_layout = LAYOUTS[(i + 1) % len(LAYOUTS)] if layout == "generic" else layout
            cases = {**CASES, **GENERIC_ONLY} if layout == "generic" else CASES
            for case_name in cases:
                out.append(pytest.param(name, a_layout, b_layout, case_name, id=f"{name}-{a_layout}-{case_name}"))
    return out


@pytest.mark.parametrize(("variant", "a_layout", "b_layout", "case"), _params())
def test_fixed_case(variant: str, a_layout: str, b_layout: str, case: str) -> None:
    require_device_support(MANIFEST.variants[variant])
    check("binary", variant, dict({**CASES, **GENERIC_ONLY}[case], a_layout=a_layout, b_layout=b_layout))
