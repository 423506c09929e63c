"""q8ta_convt: int8 conv_transpose2d as a direct gather kernel (variants.yaml family q8ta_convt,
role `convt`; templates/q8ta_convt/).

geometry    argument checks and sizes (PyTorch's output size and output_padding rule)
op          conv_transpose2d_q8, run_conv_transpose2d_q8 (guard bands, garbage padding, timing), weight packing
oracle      the NumPy reference: a scatter over input pixels (NumPy only), and a slow loop gather
checks      level convt for the generic property tests
strategies  Hypothesis strategies of conv_transpose cases
"""

from runtime.core.registry import Family, register

from . import checks
from .op import ROLE, conv_transpose2d_q8

FAMILY = register(Family(
    name="q8ta_convt",
    roles=(ROLE,),
    levels=checks.LEVELS,
    ops={"conv_transpose2d_q8": conv_transpose2d_q8},
    doc=__doc__ or "",
))
