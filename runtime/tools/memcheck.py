"""Leak check: run many small dispatches and report resident memory.

Usage: ``python -m runtime.tools.memcheck --dispatches 10000 [--device NAME] [--max-growth-mb 8]``

Exits with status 1 when RSS grows by more than ``--max-growth-mb`` between
the end of the warm-up and the end of the run.  Needs ``glslc`` on PATH to
build its tiny shader.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime.core.context import selector_from_text
from runtime.core.device import Device, Step
from runtime.core.manifest import VariantEntry

_SHADER = """#version 450
layout(local_size_x = 64) in;
layout(push_constant) uniform PC { uint n; float scale; } pc;
layout(set = 0, binding = 0) writeonly buffer Out { float t_out[]; };
layout(set = 0, binding = 1) readonly buffer In { float t_in[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) t_out[i] = t_in[i] * pc.scale;
}
"""


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _variant(workdir: Path) -> VariantEntry:
    glslc = shutil.which("glslc")
    if glslc is None:
        raise SystemExit("memcheck needs glslc (apt-get install glslc)")
    src = workdir / "memcheck.comp"
    spv = workdir / "memcheck.spv"
    src.write_text(_SHADER)
    subprocess.run([glslc, "--target-env=vulkan1.2", "-o", str(spv), str(src)], check=True)
    storage = {"set": 0, "kind": "storage_buffer", "element": "float", "element_size": 4, "block_size": 0}
    return VariantEntry.from_json({
        "name": "memcheck_scale",
        "family": "memcheck",
        "role": "memcheck",
        "axes": {},
        "spv": spv.name,
        "sha256": hashlib.sha256(spv.read_bytes()).hexdigest(),
        "entry_point": "main",
        "bindings": [
            {**storage, "binding": 0, "name": "t_out", "access": "write"},
            {**storage, "binding": 1, "name": "t_in", "access": "read"},
        ],
        "push_constants": {
            "size": 8,
            "members": [
                {"name": "n", "offset": 0, "type": "uint", "size": 4},
                {"name": "scale", "offset": 4, "type": "float", "size": 4},
            ],
        },
        "spec_constants": [],
        "local_size": [64, 1, 1],
        "local_size_spec_ids": [None, None, None],
        "features": [],
    }, workdir)


def run_dispatches(device: Device, variant: VariantEntry, count: int) -> None:
    """Alternate the paths that allocate per run: ndarray uploads, timestamps, plain buffers."""
    pipeline = device.pipeline(variant)
    n = 256
    host = np.arange(n, dtype=np.float32)
    with device.alloc(n * 4) as out, device.upload(host) as inp:
        for i in range(count):
            source = host if i % 3 == 0 else inp
            step = Step(pipeline, {0: out, 1: source}, {"n": n, "scale": 2.0}, (n // 64, 1, 1))
            device.run([step], timestamps=i % 3 == 1)
        if not np.array_equal(out.read(np.float32), host * 2):
            raise SystemExit("memcheck: wrong results")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.tools.memcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--dispatches", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--device", default=None, help="device index or name substring")
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    args = parser.parse_args(argv)
    try:
        selector = None if args.device is None else selector_from_text(args.device, "--device")
    except ValueError as exc:
        parser.error(str(exc).splitlines()[0])
    print(f"rss at start:                 {rss_mib():8.1f} MiB")
    with tempfile.TemporaryDirectory(prefix="shaderkit-memcheck-") as tmp, Device(selector) as device:
        variant = _variant(Path(tmp))
        print(f"device:                       {device.info.name}")
        run_dispatches(device, variant, args.warmup)
        warm = rss_mib()
        print(f"rss after {args.warmup:6d} warm-up:     {warm:8.1f} MiB")
        run_dispatches(device, variant, args.dispatches)
        end = rss_mib()
        print(f"rss after {args.dispatches:6d} dispatches:  {end:8.1f} MiB")
    growth = end - warm
    print(f"growth after warm-up:         {growth:+8.1f} MiB (limit {args.max_growth_mb} MiB)")
    return 1 if growth > args.max_growth_mb else 0


if __name__ == "__main__":
    sys.exit(main())
