"""q8ta_quantize: float <-> int8 (variants.yaml families q8ta_quantize, q8ta_dequantize;
templates/q8ta_quantize/), the int8 side in any layout, the float side plain NCHW.

op          quantize, dequantize and the run_* entry points tests and the bench use
oracle      the NumPy reference and the windows a Vulkan device may use (NumPy only)
checks      levels quantize / dequantize / roundtrip for the generic property tests
strategies  Hypothesis strategies of quantize, dequantize and round-trip cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import dequantize, quantize

FAMILY = register(Family(
    name="q8ta_quantize",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"quantize": quantize, "dequantize": dequantize},
    doc=__doc__ or "",
))
