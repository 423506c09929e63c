"""GPU timing of dispatch sequences: keep a device at its working clock, then time steps back to back.

Shared by the bench (bench/measure.py) and a family's own timing (runtime/families/q8ta_igemm/timing.py),
so both measure the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .device import Device
from .dispatch import Step


def spin_up(dev: Device, steps: Sequence[Step], seconds: float) -> None:
    """Keep the device busy with `steps` for about `seconds` of wall time before a measurement.

    An idle GPU sits at a low clock and takes a while under load to boost (seen on the H100:
    a probe timed cold ran several times slower, with a bimodal spread); a peak must be measured
    at the clock the heavy work runs at.
    """
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        dev.run(steps)


def time_steps(dev: Device, steps: Sequence[Step], reps: int, warmup: int) -> list[list[float]]:
    """Run `steps` `warmup` times untimed, then `reps` times with timestamps.

    Returns the GPU seconds of every step of every timed run. All timed runs go in one command
    buffer, back to back (with the usual barriers between dispatches), as a network would issue
    them: with one submit per run, the GPU idles between tiny dispatches while the host waits, and
    drops its clock. The timestamps still bracket each dispatch alone.
    """
    if warmup > 0:
        dev.run(list(steps) * warmup)
    n = len(steps)
    seconds = dev.run(list(steps) * max(1, reps), timestamps=True)
    assert seconds is not None  # timestamps=True always returns them
    return [seconds[i * n : (i + 1) * n] for i in range(max(1, reps))]
