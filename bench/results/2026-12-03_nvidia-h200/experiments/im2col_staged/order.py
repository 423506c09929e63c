"""dw144, dw32, dw96/2 and the stem: im2col's window path in the committed thread order and with the
groups fastest (spec constant GROUP_FAST of group_fast.patch), kernel rows in 1, 3 or KH parts, each
variant of the build (wg 64/128/256 in run 2), then the stream path; kernel ms of 20 back-to-back calls.

    SHADERKIT_BUILD=<build with group_fast.patch> PYTHONPATH=. python <this file>
    SMALL=1 ...: small shapes, no CUDA context (a lavapipe check of the outputs)
"""
import os

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device, open_device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import VariantEntry, load_manifest
from runtime.families.q8ta_conv2d import im2col
from runtime.families.q8ta_igemm.timing import ConvLayer, kernel_seconds, warm_up
from runtime.oplib.conv import ConvGeometry, conv_geometry

SMALL = bool(os.environ.get("SMALL"))
# (N, C, H, W, groups, K, stride, padding)
SHAPES = {"dw144": (1, 144, 112, 112, 144, 3, 1, 1), "dw32": (1, 32, 112, 112, 32, 3, 1, 1),
          "stem": (16, 3, 224, 224, 1, 7, 2, 3), "dw96s2": (4, 96, 112, 112, 96, 3, 2, 1)}
if SMALL:
    SHAPES = {"dw12": (1, 12, 9, 16, 12, 3, 1, 1), "stem": (2, 3, 19, 24, 1, 7, 2, 3)}
else:
    import torch  # a CUDA context keeps the GPU at its working clock

    torch.zeros(1, device="cuda")


def unit_step(dev: Device, e: VariantEntry, lay: Layout, geom: ConvGeometry, pl: im2col.Im2colPlan,
              spec: dict[str, int], out: Buffer, xb: Buffer) -> Step:
    bufs: dict[str | int, Buffer | np.ndarray] = {0: out, 1: xb}
    if any(b.binding == 2 for b in e.bindings):
        bufs[2] = im2col.metadata(lay, (geom.N, geom.C_in, geom.H, geom.W))
    push = {**im2col.conv_push(geom), "units": (pl.channel_words, pl.strips, pl.image_rows, pl.threads),
            "matrix": (pl.row_blocks, pl.k4_group, pl.row_stride, pl.group_stride), "flat_rows": pl.flat_rows,
            "x_zp": 3, "kh_parts": pl.kh_parts, "kh_rows": pl.kh_rows, "stream_iters": 1}
    return Step(dev.pipeline(e, spec), bufs, push, (im2col.workgroups(pl.threads, e.local_size[0]), 1, 1))


with open_device(None) as dev:
    m = load_manifest()
    if not SMALL:
        warm_up(dev, ConvLayer("rn50.res4", 8, 256, 14, 256), 6)
    lay = Layout.from_dict("4w4c", m.layouts["4w4c"])
    for sname, (N, C, H, W, G, K, s, p) in SHAPES.items():
        geom = conv_geometry((N, C, H, W), (C, C // G, K, K), stride=s, padding=p, dilation=1, groups=G)
        x = np.random.default_rng(0).integers(-128, 128, size=(N, C, H, W), dtype=np.int8)
        xw = lay.pack(x)
        nbytes = im2col.matrix_bytes(geom, "native")
        with dev.alloc(nbytes) as out, dev.alloc(xw.nbytes) as xb:
            xb.write(xw)
            ref = None
            for e in m.entries(role="im2col"):
                if "native_strip1" not in e.name:
                    continue
                for parts in (1, 3, K):
                    for fast in (0, 1):
                        pl = im2col.plan(e, lay, geom, parts, stream=False)
                        spec = {**im2col.spec_for(e, pl, lay, geom), "GROUP_FAST": fast}
                        step = unit_step(dev, e, lay, geom, pl, spec, out, xb)
                        out.fill(0)
                        dev.run([step])
                        got = out.read(np.int32)
                        ref = got.copy() if ref is None else ref
                        ok = "ok" if np.array_equal(got, ref) else "MISMATCH"
                        t = kernel_seconds(dev, [step], 20)
                        print(f"{sname:7s} {e.name:40s} parts={pl.kh_parts} group_fast={fast} {t * 1e3:.4f} ms "
                              f"{(xw.nbytes + nbytes) / t / 1e9:6.0f} GB/s {ok}", flush=True)
            for e in m.entries(role="im2col"):
                if "native" in e.name and "wg64" in e.name:
                    step = im2col.im2col_step(dev, e, lay, geom, xb, 3, out, None, True)
                    t = kernel_seconds(dev, [step], 20)
                    print(f"{sname:7s} {e.name:40s} stream {t * 1e3:.4f} ms {(xw.nbytes + nbytes) / t / 1e9:6.0f} GB/s",
                          flush=True)
