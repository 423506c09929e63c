"""q8ta_linear: the int8 linear layer (runtime.linear_q8), served by the int8 GEMM variants.

No variants.yaml block and no templates of its own: a linear layer is the GEMM of the q8ta_conv2d
family (role `gemm`: q8ta_gemm, q8ta_gemm_coopmat) with one group and x itself as the matrix, so it
claims no role and checks that role at its own level, "linear".

op          linear_q8 and run_linear_q8 (guard bands, timing, the variant used)
oracle      the NumPy reference (NumPy only)
checks      level linear over role gemm
strategies  Hypothesis strategies of linear cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import linear_q8

FAMILY = register(Family(
    name="q8ta_linear",
    roles=(),
    levels=checks.LEVELS,
    ops={"linear_q8": linear_q8},
    doc=__doc__ or "",
))
