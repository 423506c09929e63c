"""What this folder's two timing scripts share: the device held at its working clock, the copy peak
they report against, and a bench shape's input and geometry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

import runtime.families.q8ta_conv2d.im2col as host
from bench.clocks import CudaContextHold
from bench.kernels import _layout
from bench.roofline import measure_copy
from bench.suite import ConvShape
from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry, load_manifest
from runtime.oplib.conv import ConvGeometry, conv_geometry


def open_run(what: str) -> tuple[Device, Manifest, float, CudaContextHold]:
    """The device, the build's manifest, the copy peak (GB/s, the best bench_copy probe on 256 MiB after
    10 s of spin-up) and the CUDA context that keeps the SM clock up between dispatches (bench/clocks.py)."""
    dev = Device()
    manifest = load_manifest()
    hold = CudaContextHold(dev)
    print(f"# {dev.info.name}; {what}, median of 20 back-to-back calls; CUDA context {hold.note}", flush=True)
    copy = max(p.value for p in measure_copy(dev, manifest, 256 << 20, 20, 3, print, spin_s=10.0) if p.value)
    print(f"copy peak {copy:.0f} GB/s", flush=True)
    return dev, manifest, copy, hold


def conv_input(shape: ConvShape) -> tuple[np.ndarray, ConvGeometry]:
    """Random int8 input of the shape and its conv geometry (dilation 1)."""
    x = np.random.default_rng(1).integers(-128, 128, size=(shape.N, shape.C_in, shape.H, shape.W), dtype=np.int8)
    geom = conv_geometry(x.shape, (shape.groups, shape.C_in // shape.groups, shape.K, shape.K),
                         stride=shape.stride, padding=shape.padding, dilation=1, groups=shape.groups)
    return x, geom


@dataclass(frozen=True)
class Case:
    """One variant on one shape: its input packed and on the device, and the matrix buffer."""

    shape: ConvShape
    geom: ConvGeometry
    entry: VariantEntry
    layout: Layout
    x_words: np.ndarray
    x: Buffer
    out: Buffer
    nbytes: int  # of the native matrix

    def percent_of_copy(self, seconds: float, copy_gbps: float) -> float:
        return 100 * (self.x_words.nbytes + self.nbytes) / seconds / 1e9 / copy_gbps


def cases(dev: Device, manifest: Manifest, names: Sequence[str], shapes: Sequence[ConvShape],
          filters: Sequence[str]) -> Iterator[Case]:
    """Each named variant on each shape whose name has one of `filters` (all without filters)."""
    for shape in shapes:
        if filters and not any(f in shape.name for f in filters):
            continue
        x, geom = conv_input(shape)
        nbytes = host.matrix_bytes(geom, "native")
        with dev.alloc(nbytes) as out:
            for name in names:
                entry = manifest.variants[name]
                layout = _layout(manifest, entry)
                x_words = layout.pack(x)
                with dev.upload(x_words) as xb:
                    yield Case(shape, geom, entry, layout, x_words, xb, out, nbytes)
