"""dw144 / stem im2col: default thread order vs groups fastest, window path, kh_parts 1/3; wg 64/128/256."""
import sys
import numpy as np
import os
from contextlib import ExitStack
from runtime.core.device import open_device
from runtime.core.manifest import load_manifest
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.families.q8ta_conv2d import im2col as I
from runtime.families.q8ta_igemm.timing import ConvLayer, kernel_seconds, warm_up
from runtime.oplib.conv import conv_geometry

if not os.environ.get("SMALL"):
    import torch
    torch.zeros(1, device="cuda")
shapes = {"dw144": (1, 144, 112, 112, 144, 3, 1, 1), "dw32": (1, 32, 112, 112, 32, 3, 1, 1),
          "stem": (16, 3, 224, 224, 1, 7, 2, 3), "dw96s2": (4, 96, 112, 112, 96, 3, 2, 1)}
if os.environ.get("SMALL"):
    shapes = {"dw12": (1, 12, 9, 16, 12, 3, 1, 1), "stem": (2, 3, 19, 24, 1, 7, 2, 3)}
with open_device(None) as dev:
    m = load_manifest()
    if not os.environ.get("SMALL"):
        warm_up(dev, ConvLayer("rn50.res4", 8, 256, 14, 256), 6)
    L = Layout.from_dict("4w4c", m.layouts["4w4c"])
    for sname, (N, C, H, W, G, K, s, p) in shapes.items():
        geom = conv_geometry((N, C, H, W), (C, C // G, K, K), stride=s, padding=p, dilation=1, groups=G)
        x = np.random.default_rng(0).integers(-128, 128, size=(N, C, H, W), dtype=np.int8)
        xw = L.pack(x)
        nbytes = I.matrix_bytes(geom, "native")
        with dev.alloc(nbytes) as out, dev.alloc(xw.nbytes) as xb:
            xb.write(xw)
            ref = None
            for e in m.entries(role="im2col"):
                if "native_strip1" not in e.name:
                    continue
                lay = L
                for parts in (1, 3, K):
                    for gf in (0, 1):
                        pl = I.plan(e, lay, geom, parts, stream=False)
                        spec = I.spec_for(e, pl, lay, geom)
                        spec["GROUP_FAST"] = gf
                        bufs = {0: out, 1: xb}
                        if any(b.binding == 2 for b in e.bindings):
                            bufs[2] = I.metadata(lay, (geom.N, geom.C_in, geom.H, geom.W))
                        push = {**I.conv_push(geom), "units": (pl.channel_words, pl.strips, pl.image_rows, pl.threads),
                                "matrix": (pl.row_blocks, pl.k4_group, pl.row_stride, pl.group_stride),
                                "flat_rows": pl.flat_rows, "x_zp": 3, "kh_parts": pl.kh_parts, "kh_rows": pl.kh_rows,
                                "stream_iters": 1}
                        step = Step(dev.pipeline(e, spec), bufs, push, (I.workgroups(pl.threads, e.local_size[0]), 1, 1))
                        out.fill(0)
                        dev.run([step])
                        got = out.read(np.int32)
                        if ref is None:
                            ref = got.copy()
                        ok = np.array_equal(got, ref)
                        t = kernel_seconds(dev, [step], 20)
                        gbs = (xw.nbytes + nbytes) / t / 1e9
                        print(f"{sname:7s} {e.name:40s} parts={pl.kh_parts} group_fast={gf} {t*1e3:.4f} ms {gbs:6.0f} GB/s {'ok' if ok else 'MISMATCH'}", flush=True)
            for st in (True,):
                for e in m.entries(role="im2col"):
                    if "native" not in e.name or "wg64" not in e.name:
                        continue
                    step = I.im2col_step(dev, e, L, geom, xb, 3, out, None, True)
                    t = kernel_seconds(dev, [step], 20)
                    print(f"{sname:7s} {e.name:40s} stream {t*1e3:.4f} ms {(xw.nbytes + nbytes) / t / 1e9:6.0f} GB/s", flush=True)
