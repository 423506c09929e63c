"""q8ta_conv2d: int8 conv2d as im2col + GEMM (variants.yaml families q8ta_im2col, q8ta_gemm,
q8ta_gemm_coopmat; templates/q8ta_conv2d/).

op          conv2d_q8 and the run_* entry points tests and the bench use; the im2col matrix format
            both passes share (runtime/oplib/gemm_formats.py: native or upstream's)
im2col      the im2col pass's paths, thread units and dispatch
oracle      the NumPy reference (NumPy only)
checks      levels im2col / gemm / conv for the generic property tests
strategies  Hypothesis strategies of conv cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import conv2d_q8

FAMILY = register(Family(
    name="q8ta_conv2d",
    roles=checks.ROLES,
    levels=checks.LEVELS,
    ops={"conv2d_q8": conv2d_q8},
    doc=__doc__ or "",
))
