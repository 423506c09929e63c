"""Write-only bandwidth against copy bandwidth, one process (this folder's probe_fill, built into
SHADERKIT_BUILD together with the shipped variants, and bench_copy).

    SHADERKIT_BUILD=<build> PYTHONPATH=. python3 <this file>
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "im2col_fixed_taps"))
from run_setup import open_run

from runtime.core.dispatch import Step
from runtime.core.timing import spin_up, time_steps

MIB = 1 << 20


def main() -> int:
    dev, manifest, copy, _hold = open_run("write-only bandwidth")
    for e in manifest.entries(role="probe_fill"):
        for size in (38 * MIB, 64 * MIB, 256 * MIB):
            with dev.alloc(size) as dst:
                n = size // 16
                wg = int(e.axes["wg"]["x"])
                best = 0.0
                for groups in (132 * 4, 132 * 8, 132 * 16, min(65535, -(-n // wg))):
                    step = Step(dev.pipeline(e), {0: dst}, {"n": n}, (groups, 1, 1))
                    spin_up(dev, [step], 0.3)
                    t = min(sum(r) for r in time_steps(dev, [step], 20, 3))
                    best = max(best, size / t / 1e9)
                print(f"{e.name:20} {size // MIB:4d} MiB: {best:7.0f} GB/s written = {100 * best / copy:5.1f} % "
                      f"of copy ({copy:.0f} GB/s read + written)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
