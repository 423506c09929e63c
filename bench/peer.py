"""The peer: PyTorch on the same GPU, at its best, timed the two ways we are (see bench/measure.py).

GEMM: int8 x int8 -> int32 through ``torch._int_mm`` in every operand layout, plus the transposed
problem (C^T = B^T A^T); the fastest is the peer, and the others stay in the report. cuBLASLt wants
B column-major (``b.t().contiguous().t()``): with a row-major B, torch takes a path several times
slower (the bench measured that once and called it the peer; never again). fp16 ``torch.mm`` and fp8
``torch._scaled_mm`` (e4m3, tensor-wise scales) are reference rows, not peers: other precisions.
Conv: cuDNN fp16 in channels-last with ``cudnn.benchmark`` (its fast path, algorithm searched during
the warm-up), and int8 where PyTorch on CUDA offers one (stock PyTorch does not: the row says why).

Each op is timed three ways, after a warm-up:
  kernel  GPU time of its kernels alone, per call: torch.profiler's CUDA kernel times over N calls
          (like our per-dispatch timestamps); where the profiler fails, a CUDA graph of N calls,
          replayed (which keeps the graph's small gaps between kernels), and the cell says which;
  graph   a CUDA graph of N calls, replayed between two events, over N (launch overhead removed);
  stream  N eager calls back to back between two CUDA events, over N (what a program calling torch
          one op at a time gets; our stream is N dispatches in one submit).
N is sized so a block of calls lasts ~20 ms (3 to 200 calls). Everything degrades to n/a with a
reason: no PyTorch, no CUDA, an op or layout this build rejects.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.measure import Stats, summarize
from bench.suite import ConvShape, GemmShape

BLOCK_S = 0.02  # GPU seconds one block of N calls should last
MIN_CALLS, MAX_CALLS = 3, 200
BLOCKS = 3  # blocks (stream and graph samples) per op
MODES = ("kernel", "stream")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:limit]


@dataclass
class PeerTiming:
    """One peer op in one layout on one shape: its timings (per call), or why they are missing."""

    op: str  # e.g. "torch._int_mm"
    layout: str  # e.g. "A row-major, B column-major"
    kernel: Stats | None = None
    kernel_method: str = ""  # "profiler (1 kernel a call)" or "cuda graph"
    graph: Stats | None = None
    stream: Stats | None = None
    calls: int = 0  # N
    reason: str = ""  # what failed, if anything

    @property
    def label(self) -> str:
        return f"{self.op} [{self.layout}]"

    def seconds(self, mode: str) -> float | None:
        """Median seconds per call in `mode` ("kernel" or "stream"), None where not measured."""
        stats = {"kernel": self.kernel, "stream": self.stream}[mode]
        return None if stats is None else stats.median

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """Everything, or (full=False, for the rows that refer to it) the medians alone."""
        out: dict[str, Any] = {"op": self.op, "layout": self.layout, "kernel_method": self.kernel_method,
                               "calls": self.calls, "reason": self.reason}
        for name, stats in (("kernel", self.kernel), ("graph", self.graph), ("stream", self.stream)):
            out[name] = None if stats is None else stats.to_json() if full else {"median_s": stats.median}
        return out


@dataclass
class PeerSet:
    """Everything the peer ran on one shape: the candidates (the fastest is the peer) and reference rows."""

    candidates: list[PeerTiming] = field(default_factory=list)
    references: list[PeerTiming] = field(default_factory=list)
    reason: str = ""  # why there is no peer at all (no PyTorch, shape rules)

    @property
    def best(self) -> PeerTiming | None:
        """The fastest candidate by kernel time; by stream time where no candidate has a kernel time."""
        for mode in MODES:
            timed = [c for c in self.candidates if c.seconds(mode) is not None]
            if timed:
                return min(timed, key=lambda c: c.seconds(mode) or 0.0)
        return None

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {"candidates": [c.to_json() for c in self.candidates],
                "references": [r.to_json() for r in self.references], "reason": self.reason,
                "best": best.label if best else None}


class Peer:
    """PyTorch on CUDA device 0, if importable and usable; `available` and `reason` say which."""

    def __init__(self, enabled: bool = True, profiler: bool = True) -> None:
        self.available = False
        self.reason = "disabled (--no-peer)"
        self.description = "n/a"
        self.profiler = profiler
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

    # -- timing ---------------------------------------------------------------------------------------------

    def _events(self, fn: Callable[[], Any], calls: int) -> float:
        """Seconds per call of `calls` back-to-back calls between two CUDA events."""
        torch = self._torch
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) * 1e-3 / calls  # ms -> s

    def _graph(self, fn: Callable[[], Any], calls: int) -> Stats:
        """A CUDA graph of `calls` calls, replayed between two events: seconds per call."""
        torch = self._torch
        side = torch.cuda.Stream()  # capture wants its warm-up on a side stream (cuBLAS workspaces)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        samples = []
        for _ in range(BLOCKS):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)) * 1e-3 / calls)
        del graph
        return summarize(samples)

    def _profiled(self, fn: Callable[[], Any], calls: int) -> tuple[Stats, str]:
        """The profiler's CUDA kernel times of `calls` calls: seconds of kernels per call."""
        torch = self._torch
        profiler = importlib.import_module("torch.profiler")
        activities = [profiler.ProfilerActivity.CPU, profiler.ProfilerActivity.CUDA]
        torch.cuda.synchronize()
        with profiler.profile(activities=activities) as prof:
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
        kernels = [e for e in prof.events() if str(getattr(e, "device_type", "")).rsplit(".", 1)[-1] == "CUDA"]
        if not kernels:
            raise RuntimeError("the profiler recorded no CUDA kernels")
        kernels.sort(key=lambda e: e.time_range.start)
        seconds = [float(e.time_range.elapsed_us()) * 1e-6 for e in kernels]
        per_call, rest = divmod(len(kernels), calls)
        if per_call and not rest:  # every call launched the same kernels: one sample per call
            samples = [sum(seconds[i * per_call : (i + 1) * per_call]) for i in range(calls)]
            return summarize(samples), f"profiler ({per_call} kernel{'s' if per_call > 1 else ''} a call)"
        return summarize([sum(seconds) / calls]), f"profiler ({len(kernels)} kernels in {calls} calls)"

    def measure(self, op: str, layout: str, fn: Callable[[], Any], warmup: int) -> PeerTiming:
        """Warm `fn` up, then time it the three ways; a failure of one way is noted, not fatal."""
        timing = PeerTiming(op, layout)
        torch = self._torch
        try:
            for _ in range(max(1, warmup)):  # at least one: cuDNN's algorithm search runs on the first call
                fn()
            torch.cuda.synchronize()
            one = self._events(fn, 1)
            timing.calls = int(min(MAX_CALLS, max(MIN_CALLS, round(BLOCK_S / max(one, 1e-7)))))
            timing.stream = summarize([self._events(fn, timing.calls) for _ in range(BLOCKS)])
        except Exception as exc:  # missing op, layout rules of this build, out of memory
            timing.reason = _first_line(exc)
            return timing
        notes = []
        try:
            timing.graph = self._graph(fn, timing.calls)
        except Exception as exc:
            notes.append(f"graph: {_first_line(exc)}")
        if self.profiler:
            try:
                timing.kernel, timing.kernel_method = self._profiled(fn, timing.calls)
            except Exception as exc:
                notes.append(f"profiler: {_first_line(exc)}")
        if timing.kernel is None and timing.graph is not None:
            timing.kernel, timing.kernel_method = timing.graph, "cuda graph"
        timing.reason = "; ".join(notes)
        return timing

    # -- the ops --------------------------------------------------------------------------------------------

    def gemm(self, shape: GemmShape, reps: int, warmup: int) -> PeerSet:
        """int8 (M x K) @ (K x N) -> int32 in every layout torch._int_mm takes, and the fp16 / fp8 references.

        `reps` is unused (N is sized by time); kept so callers pass the bench's settings alike."""
        if not self.available:
            return PeerSet(reason=self.reason)
        if shape.M <= 16 or shape.K % 8 or shape.N % 8:
            return PeerSet(reason="shape unsupported by torch._int_mm (needs M > 16, K and N multiples of 8)")
        torch = self._torch
        out = PeerSet()
        try:
            a = torch.randint(-128, 128, (shape.M, shape.K), dtype=torch.int8, device="cuda")
            b = torch.randint(-128, 128, (shape.K, shape.N), dtype=torch.int8, device="cuda")
            a_col, b_col = a.t().contiguous().t(), b.t().contiguous().t()
            mm = torch._int_mm
            layouts: list[tuple[str, Callable[[], Any]]] = [
                ("A row-major, B column-major", partial(mm, a, b_col)),
                ("A row-major, B row-major", partial(mm, a, b)),
                ("A column-major, B column-major", partial(mm, a_col, b_col)),
                ("A column-major, B row-major", partial(mm, a_col, b)),
                # the same product as C^T = B^T A^T: cuBLASLt sees another problem and may pick another kernel
                ("C^T = B^T A^T with B^T row-major, A^T column-major (C column-major)", partial(mm, b_col.t(), a.t())),
            ]
            del a, b, a_col, b_col  # the partials hold them until the list goes
            out.candidates = [self.measure("torch._int_mm", layout, fn, warmup) for layout, fn in layouts]
            del layouts
            out.references = self._gemm_references(shape, warmup)
        except Exception as exc:  # allocation failure and the like: whatever was timed stays
            out.reason = _first_line(exc)
        torch.cuda.empty_cache()  # give the memory back: the Vulkan side allocates next
        return out

    def _gemm_references(self, shape: GemmShape, warmup: int) -> list[PeerTiming]:
        torch = self._torch
        a16 = torch.randn(shape.M, shape.K, dtype=torch.float16, device="cuda")
        b16 = torch.randn(shape.K, shape.N, dtype=torch.float16, device="cuda")
        refs = [self.measure("torch.mm fp16", "A row-major, B row-major, fp16 out", lambda: torch.mm(a16, b16),
                             warmup)]
        fp8_op, fp8_layout = "torch._scaled_mm fp8 e4m3", "A row-major, B column-major, tensor-wise scales, bf16 out"
        try:
            a8 = a16.to(torch.float8_e4m3fn)
            b8 = b16.t().contiguous().to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm requires
            scale_a = torch.tensor(1.0, dtype=torch.float32, device="cuda")
            scale_b = torch.tensor(1.0, dtype=torch.float32, device="cuda")

            def fp8() -> Any:
                return torch._scaled_mm(a8, b8, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)

            refs.append(self.measure(fp8_op, fp8_layout, fp8, warmup))
        except Exception as exc:  # no fp8 on this GPU or build
            refs.append(PeerTiming(fp8_op, fp8_layout, reason=_first_line(exc)))
        return refs

    def conv(self, shape: ConvShape, reps: int, warmup: int) -> PeerSet:
        """cuDNN conv2d in fp16 channels-last (the candidate) and int8 (a reference: stock PyTorch on CUDA
        has no int8 conv2d, and the row keeps its error)."""
        fp16 = ("cudnn conv2d fp16", "NHWC (channels_last) x and weight, cudnn.benchmark")
        int8 = ("conv2d int8", "NHWC (channels_last) x and weight")
        if not self.available:
            return PeerSet(reason=self.reason)
        torch = self._torch
        f = torch.nn.functional
        timed = []
        for (op, layout), dtype in ((fp16, torch.float16), (int8, torch.int8)):
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

                timing = self.measure(op, layout, run, warmup)
                del x, w, run
            except Exception as exc:
                timing = PeerTiming(op, layout, reason=_first_line(exc))
            if dtype == torch.int8 and timing.stream is None:
                timing.reason = f"PyTorch on CUDA ran no int8 conv2d for this shape ({timing.reason})"
            timed.append(timing)
        torch.cuda.empty_cache()
        return PeerSet(candidates=timed[:1], references=timed[1:])
