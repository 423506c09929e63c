"""GPU clocks around a run (nvidia-smi, where there is one) and the warm-up that raises them.

An idle GPU sits at a low clock and takes a while under sustained load to boost (seen on the H100: a
probe timed cold ran several times slower; on an H200 the SM clock read 345 MHz idle and 1980 MHz
after a few seconds of matrix products). The bench therefore spins the device for a while before it
times anything and reads the clocks before and after that warm-up and at the end, so a reader can
tell at which clock the numbers were taken. The clocks are read, never set.

On NVIDIA GPUs the driver also lowers the SM clock while a run times tiny dispatches with idle gaps
between them, unless some process holds a CUDA context: on an H200 the same im2col kernels timed ~3x
slower with no CUDA context open (the SM clock sampled at 345 MHz through most of that run) than with
one (1980 MHz throughout). So a run holds one for its whole length where PyTorch with CUDA is
importable (:class:`CudaContextHold`), and says so in its report.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from bench.measure import spin_up
from bench.roofline import calibrate
from runtime.core.buffers import Buffer
from runtime.core.device import Device, Step
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import unrunnable
from runtime.families.bench_probes import op as vb

FIELDS = ("index", "name", "clocks.sm", "clocks.max.sm", "clocks.mem", "power.draw", "temperature.gpu",
          "pstate", "clocks_event_reasons.active")
# older drivers name the last field clocks_throttle_reasons.active; the fallback drops it
FALLBACK_FIELDS = FIELDS[:-1]

Runner = Callable[[Sequence[str]], Any]  # returns a subprocess.CompletedProcess (or anything shaped like it)


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=15, check=False)


def read(when: str, run: Runner = _run) -> dict[str, Any]:
    """The clocks of every NVIDIA GPU now, labelled `when`; {"when", "error"} where nvidia-smi is absent
    or fails (a CPU device, another vendor)."""
    if run is _run and shutil.which("nvidia-smi") is None:
        return {"when": when, "error": "nvidia-smi not found"}
    last = ""
    for fields in (FIELDS, FALLBACK_FIELDS):
        try:
            done = run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
        except (OSError, subprocess.SubprocessError) as exc:
            return {"when": when, "error": f"nvidia-smi: {exc}"}
        if done.returncode == 0:
            gpus = [dict(zip(fields, (c.strip() for c in line.split(",")), strict=False))
                    for line in done.stdout.splitlines() if line.strip()]
            return {"when": when, "time": time.strftime("%H:%M:%S"), "gpus": gpus}
        lines = (done.stderr or done.stdout).strip().splitlines()
        last = lines[0] if lines else f"exit status {done.returncode}"
    return {"when": when, "error": f"nvidia-smi: {last}"}


NVIDIA_VENDOR_ID = 0x10DE
LOWER = "expect a lower SM clock between tiny dispatches"


class CudaContextHold:
    """A CUDA context held open (one tiny tensor) while a run times an NVIDIA GPU through Vulkan, so the
    driver keeps its working clock between dispatches; `note` says whether it is held, or why not."""

    def __init__(self, dev: Device, enabled: bool = True) -> None:
        self._keep: Any = None
        self.note = self._open(dev, enabled)

    def _open(self, dev: Device, enabled: bool) -> str:
        if not enabled:
            return f"not held (--no-cuda-context); {LOWER}"
        if int(dev.info.vendor_id) != NVIDIA_VENDOR_ID:
            return "not held (not an NVIDIA device)"
        try:
            import torch  # optional: the bench runs without it
        except Exception as exc:  # ImportError, or a broken install raising anything else
            return f"not held: PyTorch not importable ({type(exc).__name__}); {LOWER}"
        try:
            if not torch.cuda.is_available():
                return f"not held: torch has no CUDA; {LOWER}"
            self._keep = torch.zeros(1, device="cuda")
            torch.cuda.synchronize()
        except Exception as exc:
            return f"not held: {type(exc).__name__}: {exc}"
        return f"held for the whole run (torch {torch.__version__}), which keeps the driver's working clock"

    def close(self) -> None:
        self._keep = None


def summary(reading: dict[str, Any]) -> str:
    """One line of a reading, e.g. 'SM 1980 MHz (max 1980 MHz), memory 3201 MHz, 412 W, 51 C, P0'."""
    if "error" in reading:
        return f"n/a ({reading['error']})"
    parts = []
    for gpu in reading.get("gpus", []):
        reasons = gpu.get("clocks_event_reasons.active", "")
        parts.append(
            f"SM {gpu.get('clocks.sm', '?')} (max {gpu.get('clocks.max.sm', '?')}), memory {gpu.get('clocks.mem', '?')}"
            f", {gpu.get('power.draw', '?')}, {gpu.get('temperature.gpu', '?')} C, {gpu.get('pstate', '?')}"
            + (f", event reasons {reasons}" if reasons else "")
        )
    return "; ".join(parts) or "n/a (no GPU listed)"


class Spinner:
    """Sustained heavy work that raises the GPU's clock and keeps it up: the first probe variant that runs
    here, of the tensor-core, packed-dot or integer kind in that order, sized to ~`target_s` a dispatch."""

    def __init__(self, dev: Device, manifest: Manifest, target_s: float = 5e-3) -> None:
        self.dev = dev
        self.variant = ""
        self.failures: list[str] = []
        self._step: Step | None = None
        self._buffers: list[Buffer] = []
        for role, mode in (("bench_coopmat_peak", None), ("bench_dot_peak", "sdot"), ("bench_dot_peak", "dot"),
                           ("bench_dot_peak", "int")):
            fitting = [e for e in manifest.entries(role=role) if (mode is None or e.axes.get("dot") == mode)
                       and not unrunnable(e, dev)]
            if not fitting:
                continue
            try:
                self._set_up(fitting[-1], target_s)
                return
            except Exception as exc:  # a probe this driver rejects: the next kind spins instead
                self.close()
                self.failures.append(f"{fitting[-1].name}: {type(exc).__name__}: {exc}")

    def _set_up(self, entry: VariantEntry, target_s: float) -> None:
        rng = np.random.default_rng(4)
        max_groups = int(self.dev.info.limits["maxComputeWorkGroupCount"][0])
        if entry.role == "bench_coopmat_peak":
            a, b, starts = vb.coopmat_peak_seeds(rng, entry)
            groups = max(1, min(4096, max_groups))
            m, n, _ = vb.coopmat_peak_shape(entry)
            seeds = self.dev.upload(vb.coopmat_peak_words(a, b, starts))
            out = self.dev.alloc(4 * m * n * groups * vb.coopmat_peak_subgroups(entry))
            make = partial(vb.coopmat_peak_step, self.dev, entry, seeds, out, groups=groups)
        else:
            groups = max(1, min((1 << 20) // int(entry.local_size[0]), max_groups))
            seeds = self.dev.upload(vb.seed_values(rng, vb.dot_peak_chains(entry), "random"))
            out = self.dev.alloc(4 * groups * int(entry.local_size[0]))
            make = partial(vb.dot_peak_step, self.dev, entry, seeds, out, groups=groups)
        self._buffers = [seeds, out]
        # long dispatches: few submits, so the GPU never idles between them
        self._step = make(calibrate(self.dev, make, target_s))
        self.variant = entry.name

    def spin(self, seconds: float) -> None:
        """Keep the device busy for about `seconds` of wall time (nothing where no probe runs here)."""
        if self._step is not None and seconds > 0:
            spin_up(self.dev, [self._step], seconds)

    def close(self) -> None:
        for buf in self._buffers:
            buf.free()
        self._buffers, self._step = [], None
