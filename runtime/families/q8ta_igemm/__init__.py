"""q8ta_igemm: int8 conv2d as one implicit GEMM (variants.yaml family q8ta_igemm; templates/q8ta_igemm/,
the gather templates/include/conv_gather.glsl.j2, the interface templates/include/igemm_q8.glsl.j2).

op          igemm_conv2d_q8, run_igemm_conv2d_q8 (knobs: split_k, guard, timestamps, pad_garbage)
selection   the conv2d_q8 implementation: the tuning cache's verdict per conv shape class, else a heuristic
oracle      the NumPy reference, windows x weights by einsum (NumPy only)
checks      level igemm for the generic property tests
strategies  Hypothesis strategies of conv cases
timing      ResNet-50's 3x3 layers, timed against im2col + GEMM (python -m runtime.families.q8ta_igemm)
"""

from runtime.core.registry import Family, register

from . import checks
from .op import igemm_conv2d_q8
from .selection import conv2d_q8_igemm

FAMILY = register(Family(
    name="q8ta_igemm",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"igemm_conv2d_q8": igemm_conv2d_q8},
    implements={"conv2d_q8": conv2d_q8_igemm},
    doc=__doc__ or "",
))
