"""q8ta_dwconv: direct int8 depthwise conv2d (variants.yaml family q8ta_dwconv; templates/q8ta_dwconv/).

op          dwconv2d_q8, run_dwconv2d_q8, the conv2d_q8 implementation for groups = C_in = C_out,
            and time_against_im2col for the bench
oracle      the NumPy reference, tap by tap (NumPy only)
checks      level dwconv for the generic property tests
strategies  Hypothesis strategies of depthwise cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import conv2d_q8_depthwise, dwconv2d_q8

FAMILY = register(Family(
    name="q8ta_dwconv",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"dwconv2d_q8": dwconv2d_q8},
    implements={"conv2d_q8": conv2d_q8_depthwise},
    doc=__doc__ or "",
))
