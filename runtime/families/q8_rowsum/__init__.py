"""q8_rowsum: a plain-GLSL family (templates/q8_rowsum/rowsum.comp is used verbatim, no Jinja).

It shows the smallest unit a family can be: an existing shader file, a YAML block pointing at it,
an op on top of runtime.run_variant, a NumPy oracle, a check and a strategy; the generic property
tests fuzz it like any templated family.

op          rowsum_q8(a, *, scale=1, workgroup=64): int32 row sums of an int8 matrix
oracle      the same sums in NumPy
checks      level "rowsum": exact
strategies  matrices of any shape (empty rows excluded), workgroup sizes, scales, extreme values
"""

from runtime.core.registry import Family, register

from . import checks
from .op import rowsum_q8

FAMILY = register(Family(name="q8_rowsum", roles=checks.ROLES, levels=checks.LEVELS, ops={"rowsum_q8": rowsum_q8},
                         doc=__doc__ or ""))
