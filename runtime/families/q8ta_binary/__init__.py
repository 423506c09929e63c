"""q8ta_binary: int8 add / mul with NumPy broadcasting (variants.yaml family q8ta_binary;
templates/q8ta_binary/), tensors in any layout, results on the host or kept on the device.

op          add_q8, mul_q8 and run_binary, the entry point tests and the bench use
oracle      the NumPy reference (the float32 definition) and the window any Vulkan device may use
checks      level binary for the generic property tests
strategies  Hypothesis strategies of broadcasting, mixed-layout, saturating cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import add_q8, mul_q8

FAMILY = register(Family(
    name="q8ta_binary",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"add_q8": add_q8, "mul_q8": mul_q8},
    doc=__doc__ or "",
))
