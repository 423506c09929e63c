"""Scratch: time GEMM variants on square shapes with GPU timestamps (dev aid, not the bench)."""
import sys
import time

import numpy as np

from runtime.conv_q8 import GemmGeometry, Requant, gemm_step
from runtime.device import default_device
from runtime.layouts import pack_matrix_4w4c
from runtime.manifest import load_manifest

dev = default_device()
print(dev.describe())
man = load_manifest()
names = [n for n in man.names(role="gemm") if not dev.supports(man.variants[n]["features"])]
for size in [int(s) for s in sys.argv[1:]] or [1024]:
    M = K = N = size
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (1, M, K), dtype=np.int8)
    w = rng.integers(-128, 128, (N, K, 1, 1), dtype=np.int8)
    from runtime.reference import pack_weights
    w_words, wsum = pack_weights(w, 1)
    geom = GemmGeometry(1, M, K // 4, N)
    rq = Requant(np.full(N, 0.01, np.float32), None, 0.05, 0, 1.0, 0, 0)
    a_buf = dev.upload(pack_matrix_4w4c(a))
    w_buf = dev.upload(w_words)
    out = dev.alloc(geom.out_bytes)
    ref = None
    for name in names:
        entry = man.variants[name]
        step = gemm_step(dev, man, entry, geom, a_buf, w_buf, wsum, rq, out)
        dev.run([step] * 2)
        ts = dev.run([step] * 5, timestamps=True)
        t = float(np.median(ts))
        got = out.read(np.int32).copy()
        same = "" if ref is None else ("same" if np.array_equal(got, ref) else "DIFFERENT")
        ref = got if ref is None else ref
        print(f"{size:5d} {name:50s} {t*1e3:9.3f} ms {2*M*N*K/t/1e12:8.2f} TOPS {same}", flush=True)
    try:
        import torch
        A = torch.randint(-128, 127, (M, K), dtype=torch.int8, device="cuda")
        B = torch.randint(-128, 127, (K, N), dtype=torch.int8, device="cuda")
        for _ in range(3):
            torch._int_mm(A, B)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            torch._int_mm(A, B)
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) / 10
        print(f"{size:5d} {'torch._int_mm':50s} {t*1e3:9.3f} ms {2*M*N*K/t/1e12:8.2f} TOPS")
    except Exception as exc:  # noqa: BLE001
        print("torch peer unavailable:", exc)
