"""f_conv2d: float32 / float16 conv2d as im2col + GEMM (variants.yaml families f_im2col, f_gemm;
templates/f_conv2d/), the same machinery as q8ta_conv2d with float data.

op          conv2d_float and the run_* entry points
oracle      the NumPy reference with each output's magnitude (NumPy only)
checks      levels float_im2col / float_gemm / float_conv, and the tolerance they use
strategies  Hypothesis strategies of float conv cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import conv2d_float

FAMILY = register(Family(
    name="f_conv2d",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"conv2d_float": conv2d_float},
    doc=__doc__ or "",
))
