"""bench_probes: the roofline probes `python -m bench` measures the device with (variants.yaml
families bench_copy, bench_dot_peak, bench_coopmat_peak; templates/bench_probes/). Not used by any op.

op          the probe dispatches and their operation counts
oracle      the dot-peak and coopmat-peak loops in NumPy
checks      levels bench_copy / bench_dot_peak / bench_coopmat_peak
strategies  Hypothesis strategies of probe cases
"""

from runtime.core.registry import Family, register

from . import checks

FAMILY = register(Family(name="bench_probes", roles=checks.ROLES, levels=checks.LEVELS, doc=__doc__ or ""))
