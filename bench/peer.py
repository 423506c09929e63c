"""The peer: PyTorch on the same GPU (torch._int_mm for GEMMs, cuDNN conv2d for convs), CUDA-event timed.

Everything degrades to "n/a" with a reason: no PyTorch, no CUDA, or an op the build lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.measure import Stats, summarize
from bench.suite import ConvShape, GemmShape


@dataclass
class PeerResult:
    """A peer timing, or why there is none."""

    op: str  # what ran, e.g. "torch._int_mm" or "cudnn conv2d fp16"
    stats: Stats | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "stats": self.stats.to_json() if self.stats else None, "reason": self.reason}


class Peer:
    """PyTorch on CUDA device 0, if importable and usable; `available` and `reason` say which."""

    def __init__(self, enabled: bool = True) -> None:
        self.available = False
        self.reason = "disabled (--no-peer)"
        self.description = "n/a"
        self._torch: Any = None
        if not enabled:
            return
        try:
            import torch  # the suite must run without it: imported here only
        except Exception as exc:  # ImportError, or a broken install raising anything else
            self.reason = f"PyTorch not importable ({type(exc).__name__}: {exc})"
            return
        try:
            if not torch.cuda.is_available():
                self.reason = f"torch {torch.__version__}: CUDA not available"
                return
            self.description = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                                f"cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}")
        except Exception as exc:
            self.reason = f"torch CUDA query failed: {exc}"
            return
        # let cuDNN pick its fastest algorithm per shape (the warm-up pays for the search)
        torch.backends.cudnn.benchmark = True
        self._torch = torch
        self.available = True
        self.reason = ""

    def _time(self, fn: Callable[[], Any], reps: int, warmup: int) -> Stats:
        torch = self._torch
        for _ in range(max(1, warmup)):  # at least one: cuDNN's algorithm search runs on the first call
            fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(max(1, reps)):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) * 1e-3)  # ms -> s
        return summarize(samples)

    def gemm(self, shape: GemmShape, reps: int, warmup: int) -> PeerResult:
        """torch._int_mm: int8 (M x K) @ (K x N) -> int32; needs M > 16 and K, N multiples of 8."""
        op = "torch._int_mm"
        if not self.available:
            return PeerResult(op, None, self.reason)
        if shape.M <= 16 or shape.K % 8 or shape.N % 8:
            return PeerResult(op, None, "shape unsupported (needs M > 16, K and N multiples of 8)")
        torch = self._torch
        try:
            a = torch.randint(-128, 128, (shape.M, shape.K), dtype=torch.int8, device="cuda")
            b = torch.randint(-128, 128, (shape.K, shape.N), dtype=torch.int8, device="cuda")

            def run(a: Any = a, b: Any = b) -> Any:
                return torch._int_mm(a, b)

            stats = self._time(run, reps, warmup)
            del a, b, run
            torch.cuda.empty_cache()  # give the memory back: the Vulkan side allocates next
            return PeerResult(op, stats)
        except Exception as exc:  # missing op, shape rules of this build, out of memory
            return PeerResult(op, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def conv(self, shape: ConvShape, reps: int, warmup: int) -> list[PeerResult]:
        """cuDNN conv2d in fp16 (channels-last, its fast path), and int8 where this PyTorch build has it."""
        ops = ("cudnn conv2d fp16", "conv2d int8")
        if not self.available:
            return [PeerResult(op, None, self.reason) for op in ops]
        torch = self._torch
        f = torch.nn.functional
        results = []
        for op, dtype in zip(ops, (torch.float16, torch.int8), strict=True):
            try:
                w_shape = (shape.C_out, shape.C_in // shape.groups, shape.K, shape.K)
                if dtype == torch.int8:
                    x = torch.randint(-128, 128, (shape.N, shape.C_in, shape.H, shape.W), dtype=dtype, device="cuda")
                    w = torch.randint(-128, 128, w_shape, dtype=dtype, device="cuda")
                else:
                    x = torch.randn(shape.N, shape.C_in, shape.H, shape.W, dtype=dtype, device="cuda")
                    w = torch.randn(*w_shape, dtype=dtype, device="cuda")
                x = x.contiguous(memory_format=torch.channels_last)
                w = w.contiguous(memory_format=torch.channels_last)

                def run(x: Any = x, w: Any = w) -> Any:
                    return f.conv2d(x, w, None, shape.stride, shape.padding, 1, shape.groups)

                results.append(PeerResult(op, self._time(run, reps, warmup)))
                del x, w, run
            except Exception as exc:  # int8 conv2d is not implemented on CUDA in stock PyTorch
                first = str(exc).splitlines()[0] if str(exc) else ""
                results.append(PeerResult(op, None, f"{type(exc).__name__}: {first[:120]}"))
        torch.cuda.empty_cache()
        return results
