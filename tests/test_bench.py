"""The benchmark suite (`python -m bench`) in a tiny form: it runs, checks what it times, writes a sane report;
the peer's timing paths on a fake PyTorch; the roofline's units; tuning end to end on lavapipe."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import numpy as np
import pytest

from bench import cli, clocks, spec
from bench.measure import DeviceInputs, run_offsets, summarize, time_matched
from bench.peer import Peer
from bench.report import slug
from bench.roofline import Roofline, raise_to_kernels, unit_of
from bench.suite import FULL, QUICK, SUITES
from runtime.core import tuning
from runtime.core.device import Step, default_device
from runtime.core.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
# a few variants of each kind keep the in-process run to seconds on lavapipe
VARIANTS = "float32_dot_t4x4_wg64,float32_int_t4x4_wg64,im2col_4w4c_wg64,im2col_generic_wg64"
TINY = ["--suite", "micro", "--reps", "2", "--warmup", "1", "--no-peer", "--variants", VARIANTS]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), tuning.disabled():
        status = cli.main([*TINY, "--out", str(out)])
    return out, status, stdout.getvalue()


def test_tiny_run_passes_its_checks_and_prints_the_report(tiny_run: tuple[Path, int, str]) -> None:
    out, status, stdout = tiny_run
    assert status == 0, stdout
    assert stdout == (out / "results.md").read_text()


def test_results_json_is_well_formed(tiny_run: tuple[Path, int, str]) -> None:
    out, _, _ = tiny_run
    doc = json.loads((out / "results.json").read_text())
    info = default_device().info
    meta = doc["meta"]
    assert meta["device"] == info.name and meta["api_version"] == info.api_version
    assert meta["driver"].startswith(info.driver_name) and meta["date"].endswith("UTC")
    assert meta["reps"] == 2 and meta["warmup"] == 1 and meta["suite"] == "micro"
    assert [c["when"] for c in meta["clocks"]][-1] == "end of run"

    roof = doc["roofline"]
    assert roof["copy_gbps"] > 0 and roof["dot_tops"] > 0 and roof["peaks"]["int-alu"] > 0
    assert {p["kind"] for p in roof["probes"]} >= {"copy", "int", "coopmat"}
    assert all(p["check"] == "ok" for p in roof["probes"] if p["value"] is not None)
    assert "unknown" in roof["spec_int8"]  # lavapipe has no spec sheet

    rows = doc["rows"]
    timed = [r for r in rows if r["stats"] is not None]
    assert {r["kind"] for r in timed} == {"gemm", "im2col", "conv", "conv-gemm-screen"}
    for r in timed:
        stats = r["stats"]
        assert stats["n"] == len(stats["samples_s"]) >= 2
        assert 0 < stats["min_s"] <= stats["p10_s"] <= stats["median_s"] <= stats["p90_s"] <= stats["max_s"]
        assert r["stream"]["median_s"] > 0 and r["calls"] >= 2
        assert r["check"] == "ok", r
        assert r["pct_roof"] is not None and 0 < r["pct_roof"] <= 100 + 1e-9
        assert r["pct_peak"] is not None and 0 < r["pct_peak"] <= 100 + 1e-9
        assert (r["gbps"] if r["kind"] == "im2col" else r["tops"]) > 0
        assert r["unit"] in ("packed-dot", "int-alu", "copy")
        assert r["ratio_kernel"] is None and r["ratio_stream"] is None  # --no-peer
    # every im2col variant kept by the filter is timed on the im2col shape, every GEMM one on the GEMM shape
    names = load_manifest().names
    im2col = {r["variant"] for r in timed if r["kind"] == "im2col"}
    assert im2col == {n for n in names(role="im2col") if "_wg64" in n}
    conv = [r for r in timed if r["kind"] == "conv"]
    labels = [label for r in conv for label in r["pick"].split(" = ")]
    assert sorted(labels) == ["best-gemm", "heuristic", "tuned"]
    assert all(len(r["steps"]) == 2 for r in conv)
    assert all(set(r["tuning"]["classes"]) == {"im2col", "gemm"} for r in conv)


def test_results_md_has_header_and_tables(tiny_run: tuple[Path, int, str]) -> None:
    out, _, _ = tiny_run
    md = (out / "results.md").read_text()
    info = default_device().info
    assert md.startswith(f"# shaderkit benchmark: {info.name}\n")
    for needle in (f"| driver | {info.driver_name}", f"| Vulkan API | {info.api_version} |", "| date | ",
                   "## Roofline", "tensor-core int8 MMA", "spec-sheet dense int8", "## Summary", "## GEMM",
                   "## im2col", "## conv2d", "## Tuned vs heuristic", "## Notes", "| clocks, end of run |"):
        assert needle in md, needle
    tables = [line for line in md.splitlines() if line.startswith("|")]
    # every table line has as many cells as its header
    widths: list[int] = []
    for line in tables:
        cells = line.replace("\\|", "").count("|")
        if line.startswith("|---"):
            assert cells == widths[-1]
        widths.append(cells)
    assert "n/a" in md  # peer columns without a peer


def test_roofline_png_is_an_image(tiny_run: tuple[Path, int, str]) -> None:
    import matplotlib.image

    out, _, _ = tiny_run
    png = out / "roofline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(str(png))
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_roofline_only_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["--suite", "micro", "--reps", "1", "--warmup", "0", "--only", "roofline",
                       "--out", str(tmp_path)])
    assert status == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["rows"] == [] and doc["roofline"]["copy_gbps"] > 0
    assert (tmp_path / "roofline.png").stat().st_size > 0
    assert "## Roofline" in capsys.readouterr().out


def test_runs_without_torch_hypothesis_or_matplotlib(tmp_path: Path) -> None:
    """The GPU machine has none of them (or not ours): the bench must not need them."""
    code = ("import sys\n"
            "for m in ('hypothesis', 'matplotlib', 'torch', 'jinja2', 'yaml', 'pydantic'): sys.modules[m] = None\n"
            "from bench import cli\n"
            f"sys.exit(cli.main(['--suite', 'micro', '--reps', '1', '--warmup', '0', '--only', 'gemm', "
            f"'--variants', 'float32_int_t4x4_wg64', '--out', {str(tmp_path)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "matplotlib is not installed" in done.stderr and (tmp_path / "results.md").exists()
    assert "PyTorch not importable" in (tmp_path / "results.md").read_text()


def test_budget_skips_the_rest(tmp_path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([*TINY, "--budget-s", "1e-9", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["rows"] and all(r["status"].startswith("skipped: time budget") for r in doc["rows"])
    assert "the time budget was spent" in (tmp_path / "results.md").read_text()


def test_arguments() -> None:
    args = cli.parse_args(["--quick"])
    assert args.suite == "quick" and args.only == set(cli.KINDS) and (args.reps, args.warmup) == (10, 2)
    args = cli.parse_args(["--only", "gemm,conv", "--only", "im2col", "--reps", "3", "--warmup", "0"])
    assert args.only == {"gemm", "conv", "im2col"} and (args.reps, args.warmup) == (3, 0)
    for bad in (["--only", "flops"], ["--reps", "0"], ["--suite", "huge"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)
    assert slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_suites() -> None:
    for suite in SUITES.values():
        names = [s.name for s in (*suite.conv, *suite.im2col)] + [g.name for g in suite.gemm]
        assert len(names) == len(set(names)), suite.name
    stem = next(s for s in FULL.conv if s.name == "rn50.stem.7x7s2")
    assert (stem.H_out, stem.W_out, stem.macs) == (112, 112, 112 * 112 * 64 * 3 * 49)
    res = {s.C_in: s.H for s in FULL.conv if s.name.startswith("rn50.res") and s.name.endswith(".3x3")}
    assert res == {64: 56, 128: 28, 256: 14, 512: 7}
    assert any(s.groups == s.C_in > 1 for s in FULL.conv)  # depthwise
    dims = [d for g in FULL.gemm for d in (g.M, g.K, g.N)]
    assert min(dims) == 256 and max(dims) == 8192
    assert any(len({g.M, g.K, g.N}) > 1 for g in FULL.gemm)
    assert all(g.K % 16 == 0 and g.N % 16 == 0 and g.M > 16 for g in FULL.gemm)  # _int_mm's and _scaled_mm's rules
    assert max(d for g in QUICK.gemm for d in (g.M, g.K, g.N)) <= 512
    assert FULL.pacing.warm_s > 0 and FULL.roofline.coop_subgroups >= 4096


def test_stats() -> None:
    s = summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 5.0, 5)
    assert 1.0 <= s.p10 <= s.median <= s.p90 <= 5.0
    with pytest.raises(ValueError):
        summarize([])


def _copy_step(dev: Any, dst: Any, src: Any, n_vec4: int) -> Step:
    return Step(dev.pipeline(load_manifest().variant("bench_copy_wg64")), {0: dst, 1: src}, {"n": n_vec4},
                (max(1, n_vec4 // 64), 1, 1))


def test_device_inputs_upload_each_array_once() -> None:
    dev = default_device()
    src = np.arange(64, dtype=np.uint32)
    with DeviceInputs(dev) as inputs:
        dst = inputs.alloc(src.nbytes)
        steps = [inputs.persist(_copy_step(dev, dst, src, 16)) for _ in range(2)]
        bound: list[Any] = [s.buffers[1] for s in steps]
        assert bound[0] is bound[1] and not isinstance(bound[0], np.ndarray)
        dev.run(steps)
        assert np.array_equal(dst.read(np.uint32), src)


def test_stream_and_kernel_timing() -> None:
    """The stream spans every dispatch, so per call it is at least the kernels' time; offsets are ordered."""
    dev = default_device()
    src = np.arange(1 << 16, dtype=np.uint32)
    with dev.upload(src) as s, dev.alloc(src.nbytes) as d:
        step = _copy_step(dev, d, s, src.size // 4)
        offsets = run_offsets(dev, [step] * 4)
        assert offsets[0][0] == 0.0
        flat = [t for pair in offsets for t in pair]
        assert flat == sorted(flat) and all(end > start for start, end in offsets)
        m = time_matched(dev, [step, step], 5, 1, blocks=3)
        assert m.calls == 5 and m.kernel.n == 15 and m.stream.n == 3 and len(m.steps) == 2
        per_call = sum(m.kernel.samples) / m.kernel.n
        assert sum(m.stream.samples) / m.stream.n >= per_call * (1 - 1e-9)
        assert m.kernel.median == pytest.approx(m.steps[0].median + m.steps[1].median, rel=0.5)


# -- the roofline's units -----------------------------------------------------------------------------------


def test_every_variant_has_its_units_peak() -> None:
    manifest = load_manifest()
    units = {e.name: unit_of(e) for role in ("gemm", "im2col") for e in manifest.entries(role=role)}
    assert {u for n, u in units.items() if "coopmat" in n} == {"tensor"}
    assert {u for n, u in units.items() if "_sdot_" in n or "_dot_" in n} == {"packed-dot"}
    assert {u for n, u in units.items() if "_int_" in n} == {"int-alu"}
    assert {u for n, u in units.items() if n.startswith("q8ta_im2col")} == {"copy"}


def test_a_kernel_beating_its_probe_lifts_the_ceiling() -> None:
    roof = Roofline(peaks={"packed-dot": 60.0, "tensor": 500.0, "copy": 3000.0},
                    sources={"packed-dot": "bench_dot_peak_sdot_t4x16_wg64", "tensor": "p", "copy": "c"})
    moved = raise_to_kernels(roof, [("packed-dot", "gemm_sdot_stage", 88.0), ("packed-dot", "gemm_slow", 30.0),
                                    ("tensor", "coop", 180.0), ("int-alu", "int", 5.0)])
    assert moved == ["packed-dot"]
    assert roof.peak("packed-dot") == 88.0 and roof.sources["packed-dot"] == "gemm_sdot_stage"
    assert "bench_dot_peak_sdot_t4x16_wg64" in roof.raised["packed-dot"] and "60" in roof.raised["packed-dot"]
    assert roof.peak("tensor") == 500.0 and "tensor" not in roof.raised
    assert roof.peak("int-alu") is None  # no probe, no ceiling: nothing is invented
    assert roof.attainable_tops(1e12, 1e9, "tensor") == pytest.approx(min(500.0, 1e3 * 3000e9 / 1e12))


def test_spec_sheet() -> None:
    assert spec.spec_int8("NVIDIA H100 80GB HBM3").tops == 1979.0  # type: ignore[union-attr]
    assert spec.spec_int8("NVIDIA H100 PCIe").tops == 1513.0  # type: ignore[union-attr]
    assert spec.spec_int8("NVIDIA H200").tops == 1979.0  # type: ignore[union-attr]
    assert spec.spec_int8("NVIDIA H200 NVL").tops is None  # type: ignore[union-attr]
    assert spec.spec_int8("llvmpipe (LLVM 15.0.6, 256 bits)") is None
    assert spec.describe("NVIDIA H200").startswith("1979 TOPS") and "unknown" in spec.describe("AMD Radeon")


def test_clock_readings() -> None:
    fields_seen: list[str] = []

    def fake(cmd: Any) -> Any:
        query = cmd[1]
        fields_seen.append(query)
        if "clocks_event_reasons" in query:  # an older driver
            return NS(returncode=2, stdout="", stderr='Field "clocks_event_reasons.active" is not a valid field')
        return NS(returncode=0, stdout="0, NVIDIA H200, 1980 MHz, 1980 MHz, 3201 MHz, 412.5 W, 51, P0\n", stderr="")

    reading = clocks.read("after warm-up", run=fake)
    assert len(fields_seen) == 2 and reading["gpus"][0]["clocks.sm"] == "1980 MHz"
    assert "SM 1980 MHz (max 1980 MHz), memory 3201 MHz, 412.5 W, 51 C, P0" == clocks.summary(reading)
    broken = clocks.read("x", run=lambda cmd: NS(returncode=9, stdout="", stderr="NVIDIA-SMI has failed\nmore"))
    assert broken["error"] == "nvidia-smi: NVIDIA-SMI has failed" and clocks.summary(broken).startswith("n/a")


def test_cuda_context_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held only on an NVIDIA device with a CUDA-capable torch; every other case says why not."""
    nvidia, other = NS(info=NS(vendor_id=0x10DE)), NS(info=NS(vendor_id=0x10005))
    assert "not an NVIDIA device" in clocks.CudaContextHold(other).note  # type: ignore[arg-type]
    assert "--no-cuda-context" in clocks.CudaContextHold(nvidia, enabled=False).note  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert "PyTorch not importable" in clocks.CudaContextHold(nvidia).note  # type: ignore[arg-type]
    made: list[Any] = []
    cuda = NS(is_available=lambda: True, synchronize=lambda: None)
    fake = NS(__version__="9.9", cuda=cuda, zeros=lambda n, device: made.append((n, device)) or "tensor")
    monkeypatch.setitem(sys.modules, "torch", fake)
    hold = clocks.CudaContextHold(nvidia)  # type: ignore[arg-type]
    assert made == [(1, "cuda")] and hold.note.startswith("held") and "9.9" in hold.note
    hold.close()
    cuda.is_available = lambda: False
    assert "torch has no CUDA" in clocks.CudaContextHold(nvidia).note  # type: ignore[arg-type]


# -- the peer, on a fake PyTorch ----------------------------------------------------------------------------


class _Clock:
    """The fake GPU's time (ms), what it has run, and the open profiler / graph capture."""

    now = 0.0
    profile: list[Any] | None = None
    capture: list[float] | None = None

    @classmethod
    def run(cls, name: str, ms: float) -> None:
        if cls.capture is not None:  # captured into a graph: runs on replay
            cls.capture.append(ms)
            return
        if cls.profile is not None:
            cls.profile.append(NS(device_type="DeviceType.CPU", name=f"aten::{name}",
                                  time_range=NS(start=cls.now, elapsed_us=lambda: 3.0)))
            start = cls.now * 1e3
            cls.profile.append(NS(device_type="DeviceType.CUDA", name=f"{name}_kernel",
                                  time_range=NS(start=start, elapsed_us=lambda ms=ms: ms * 1e3)))
        cls.now += ms + 0.01  # a small launch gap, which the profiler's kernel times leave out


class _Tensor:
    def __init__(self, dtype: str, shape: tuple[int, ...], col: bool = False) -> None:
        self.dtype, self.shape, self.col = dtype, shape, col

    def t(self) -> _Tensor:
        return _Tensor(self.dtype, self.shape[::-1], not self.col)

    def contiguous(self, memory_format: Any = None) -> _Tensor:
        return _Tensor(self.dtype, self.shape)

    def to(self, dtype: str) -> _Tensor:
        return _Tensor(dtype, self.shape, self.col)


def _int_mm(a: _Tensor, b: _Tensor) -> _Tensor:
    if a.dtype != "int8":
        raise RuntimeError("expected int8")
    _Clock.run("int_mm", 1.0 if (not a.col and b.col) else 4.0)  # cuBLASLt's TN layout is the fast one
    return _Tensor("int32", (a.shape[0], b.shape[1]))


class _Event:
    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t = 0.0

    def record(self) -> None:
        self.t = _Clock.now

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _Event) -> float:
        return end.t - self.t


class _Graph:
    def __init__(self) -> None:
        self.ms: list[float] = []

    def replay(self) -> None:
        _Clock.now += sum(self.ms)


@contextlib.contextmanager
def _capture(graph: _Graph) -> Iterator[None]:
    _Clock.capture = graph.ms
    try:
        yield
    finally:
        _Clock.capture = None


class _Profile:
    def __init__(self, activities: Any) -> None:
        self._events: list[Any] = []

    def __enter__(self) -> _Profile:
        _Clock.profile = self._events
        return self

    def __exit__(self, *exc: object) -> None:
        _Clock.profile = None

    def events(self) -> list[Any]:
        return list(self._events)


def _fake_torch(profiler_works: bool = True) -> tuple[Any, Any]:
    """Just the torch API bench/peer.py uses, with a fake clock, so the peer's paths run without a GPU."""

    def conv2d(x: _Tensor, w: _Tensor, bias: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> _Tensor:
        if x.dtype == "int8":
            raise RuntimeError("FIND was unable to find an engine to execute this computation")
        _Clock.run("conv", 0.5)
        return x

    def mm(a: _Tensor, b: _Tensor) -> _Tensor:
        _Clock.run("mm", 2.0)
        return a

    def scaled_mm(a: _Tensor, b: _Tensor, scale_a: Any, scale_b: Any, out_dtype: str) -> _Tensor:
        assert a.dtype == b.dtype == "float8_e4m3fn" and b.col and not a.col  # _scaled_mm's layout rule
        _Clock.run("scaled_mm", 0.5)
        return a

    def profile(activities: Any) -> _Profile:
        if not profiler_works:
            raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED")
        return _Profile(activities)

    stream = NS(wait_stream=lambda other: None)
    torch = NS(
        __version__="0.0-fake", version=NS(cuda="13.x"), int8="int8", float16="float16", bfloat16="bfloat16",
        float32="float32", float8_e4m3fn="float8_e4m3fn", channels_last="cl",
        backends=NS(cudnn=NS(version=lambda: 91900, benchmark=False)),
        cuda=NS(is_available=lambda: True, get_device_name=lambda i: "Fake GPU", synchronize=lambda: None,
                Event=_Event, empty_cache=lambda: None, Stream=lambda: stream, current_stream=lambda: stream,
                stream=lambda s: contextlib.nullcontext(), CUDAGraph=_Graph, graph=_capture),
        randint=lambda lo, hi, size, dtype, device: _Tensor(dtype, tuple(size)),
        randn=lambda *shape, dtype, device: _Tensor(dtype, tuple(shape)),
        tensor=lambda value, dtype, device: _Tensor(dtype, ()),
        _int_mm=_int_mm, mm=mm, _scaled_mm=scaled_mm,
        nn=NS(functional=NS(conv2d=conv2d)),
    )
    profiler = NS(ProfilerActivity=NS(CPU="cpu", CUDA="cuda"), profile=profile)
    return torch, profiler


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch, profiler = _fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.profiler", profiler)


def test_missing_pytorch_means_na(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    peer = Peer()
    assert not peer.available and "PyTorch" in peer.reason
    gemm = peer.gemm(QUICK.gemm[0], 2, 1)
    assert gemm.best is None and "PyTorch" in gemm.reason
    assert peer.conv(QUICK.conv[0], 2, 1).best is None


def test_peer_gemm_tries_every_layout_and_keeps_the_fastest(fake_torch: None) -> None:
    peers = Peer().gemm(QUICK.gemm[0], 2, 1)
    layouts = [c.layout for c in peers.candidates]
    assert len(layouts) == 5 and layouts[0] == "A row-major, B column-major"
    best = peers.best
    assert best is not None and best.layout == "A row-major, B column-major" and best.op == "torch._int_mm"
    assert best.kernel_method == "profiler (1 kernel a call)"
    assert best.seconds("kernel") == pytest.approx(1e-3)  # kernels alone: no launch gaps
    assert best.seconds("stream") == pytest.approx(1.01e-3)  # back to back: the gaps count
    assert best.graph is not None and best.graph.median == pytest.approx(1e-3)
    assert best.calls == 20  # BLOCK_S / one call
    slow = next(c for c in peers.candidates if c.layout == "A row-major, B row-major")
    assert slow.seconds("kernel") == pytest.approx(4e-3)
    assert [r.op for r in peers.references] == ["torch.mm fp16", "torch._scaled_mm fp8 e4m3"]
    assert all(r.seconds("kernel") for r in peers.references)
    assert json.loads(json.dumps(peers.to_json()))["best"] == best.label


def test_peer_kernel_time_falls_back_to_a_cuda_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    torch, profiler = _fake_torch(profiler_works=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.profiler", profiler)
    best = Peer().gemm(QUICK.gemm[0], 2, 1).best
    assert best is not None and best.kernel_method == "cuda graph" and "CUPTI" in best.reason
    assert best.seconds("kernel") == pytest.approx(1e-3)


def test_peer_columns_in_the_report(tmp_path: Path, fake_torch: None) -> None:
    args = [a for a in TINY if a != "--no-peer"]
    with contextlib.redirect_stdout(io.StringIO()), tuning.disabled():
        assert cli.main([*args, "--only", "gemm,conv", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert "Fake GPU" in doc["meta"]["peer"]
    rows = [r for r in doc["rows"] if r["kind"] in ("gemm", "conv") and r["stats"]]
    assert rows
    for r in rows:
        assert r["ratio_kernel"] == pytest.approx(r["peer"]["kernel"]["median_s"] / r["stats"]["median_s"])
        assert r["ratio_stream"] == pytest.approx(r["peer"]["stream"]["median_s"] / r["stream"]["median_s"])
    gemm = next(r for r in rows if r["kind"] == "gemm")
    assert gemm["peer"]["layout"] == "A row-major, B column-major"
    conv = next(r for r in rows if r["kind"] == "conv")
    assert conv["peer"]["op"] == "cudnn conv2d fp16" and conv["peer"]["kernel"]["median_s"] == pytest.approx(5e-4)
    assert conv["peer_refs"][0]["stream"] is None and "no int8 conv2d" in conv["peer_refs"][0]["reason"]
    assert doc["peers"]["micro.gemm64"]["best"] == "torch._int_mm [A row-major, B column-major]"
    md = (tmp_path / "results.md").read_text()
    assert "## Peer: PyTorch" in md and "**torch._int_mm [A row-major, B column-major]**" in md
    assert "torch._scaled_mm fp8 e4m3" in md and "unable to find an engine" in md


# -- tuning, end to end -------------------------------------------------------------------------------------


def test_tune_writes_a_cache_the_bench_and_the_op_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "cache_path", lambda manifest, name: tmp_path / f"{tuning.slug(name)}.json")
    monkeypatch.delenv(tuning.ENV, raising=False)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli.main(["tune", "--suite", "micro", "--reps", "1", "--out", str(tmp_path / "t")]) == 0
    assert "| gemm |" in out.getvalue() and (tmp_path / "t" / "tune.md").exists()
    dev = default_device()
    path = tmp_path / f"{tuning.slug(dev.info.name)}.json"
    doc = json.loads(path.read_text())
    assert doc["key"]["device"] == dev.info.name and doc["key"]["manifest_digest"] == load_manifest().digest
    assert set(doc["entries"]) == {"q8ta_conv2d.im2col", "q8ta_conv2d.gemm", "conv2d_q8.impl"}
    # conv2d_q8's implementations (q8ta_igemm's variants) timed against its im2col + GEMM pair, whose
    # 8 channels keep it untuned (runtime/families/q8ta_igemm/selection.py)
    impl_entry = next(iter(doc["entries"]["conv2d_q8.impl"].values()))
    assert set(impl_entry["seconds"]) == {"micro.conv3x3"} and impl_entry["timed"] > 1
    assert impl_entry["heuristic"] == {"micro.conv3x3": "im2col+gemm"}
    gemm_entry = next(iter(doc["entries"]["q8ta_conv2d.gemm"].values()))
    assert set(gemm_entry["seconds"]) == {"micro.conv3x3"}
    assert gemm_entry["timed"] > 1 and gemm_entry["heuristic"]
    # the bench now shows the cache's entries and the tuned pair beside the heuristic one
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([*TINY, "--only", "conv", "--out", str(tmp_path / "b")]) == 0
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    tuned = next(r for r in rows if r["kind"] == "conv" and "tuned" in r["pick"].split(" = "))
    assert tuned["tuning"]["entries"]["gemm"] is not None
    assert tuned["variant"].endswith(tuned["tuning"]["entries"]["gemm"])


def test_tune_sweeps_the_k_split_of_the_fastest_igemm_variants() -> None:
    from bench import tune
    from runtime.families.q8ta_conv2d.op import conv_geometry
    from runtime.families.q8ta_igemm.op import k_step, split_counts

    dev, manifest = default_device(), load_manifest()
    g = conv_geometry((1, 64, 9, 8), np.zeros((24, 64, 3, 3), np.int8), stride=1, padding=1, dilation=1, groups=1)
    splitting = [e for e in manifest.entries(role="igemm") if k_step(e)][:5]
    assert len(splitting) == 5
    result = tune.ClassResult(tune.IMPL, "cls", shapes=["L"])
    for i, e in enumerate(splitting):  # the first is the slowest, the second failed
        result.seconds[e.name] = {"L": 1.0 / (i + 1)}
    result.failed[splitting[1].name] = "FAILED: output differs"
    pairs = tune._split_sweep(NS(dev=dev), result, "L", g, splitting)
    fastest = [splitting[4], splitting[3], splitting[2]]
    assert pairs == [(e, s) for e in fastest for s in split_counts(dev, e, g)]
    assert all(len(split_counts(dev, e, g)) > 1 for e in fastest)  # 18 K steps: several splits each


def test_tune_records_a_split_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import tune
    from runtime.families.q8ta_igemm.selection import IMPL_KEY, split_choice

    monkeypatch.setattr(tuning, "cache_path", lambda manifest, name: tmp_path / f"{tuning.slug(name)}.json")
    result = tune.ClassResult(tune.IMPL, "cls", shapes=["L"], seconds={"v": {"L": 2.0}, "v S=3": {"L": 1.0}},
                              choices={"v S=3": split_choice("v", 3)})
    assert result.choose() == "v S=3"
    path = tune.write_cache(default_device(), load_manifest(), [result])
    assert json.loads(path.read_text())["entries"][IMPL_KEY]["cls"]["choice"] == {"variant": "v", "split_k": "3"}


def test_warm_up_spins_the_heaviest_probe_that_runs_here() -> None:
    from bench.clocks import Spinner
    from bench.options import warm_up

    dev = default_device()
    spinner = Spinner(dev, load_manifest())
    try:
        # lavapipe has no cooperative matrices: the packed-dot probe spins instead
        assert spinner.variant.startswith("bench_dot_peak_sdot") and not spinner.failures
        logged: list[str] = []
        readings = warm_up(spinner, 0.05, logged.append)
        assert [r["when"] for r in readings] == ["before warm-up", f"after 0 s warm-up ({spinner.variant})"]
        assert logged and spinner.variant in logged[0]
        assert len(warm_up(spinner, 0.0, logged.append)) == 1  # no warm-up asked: one reading, no spin
    finally:
        spinner.close()


# --- bench.heuristic: the GEMM heuristic against a run's measurements --------------------------------------


def _gemm_row(shape: str, desc: str, variant: str, tops: float) -> dict[str, Any]:
    return {"kind": "gemm", "shape": shape, "desc": desc, "variant": variant, "tops": tops}


def test_heuristic_check_scores_the_pick_against_the_fastest_timed() -> None:
    from bench import heuristic
    from runtime.core.manifest import load_manifest

    manifest = load_manifest()
    names = sorted(manifest.variants)
    pipe = next(n for n in names if n.startswith("q8ta_gemm_dot_pipe_") and "bm128bn64" in n and n.endswith("_s1"))
    staged = next(n for n in names if n.startswith("q8ta_gemm_float32_sdot_t8x8_wg128_stage_native"))
    emulated = next(n for n in names if n.startswith("q8ta_gemm_coopmat_pipe_float32_emulated"))
    rows = [_gemm_row("gemm.big", "M4096 K4096 N4096", pipe, 90.0),
            _gemm_row("gemm.big", "M4096 K4096 N4096", staged, 120.0),  # faster: the pick scores 75 %
            _gemm_row("gemm.big", "M4096 K4096 N4096", emulated, 1000.0),  # never a candidate
            _gemm_row("gemm.odd", "no sizes here", pipe, 1.0)]  # skipped
    found = heuristic.verdicts({"rows": rows}, manifest)
    assert [(v.shape, v.pick, v.best) for v in found] == [("gemm.big", pipe, staged)]
    assert found[0].share == pytest.approx(0.75)
    text = heuristic.report("t", found)
    assert "75.0 %" in text and "1 shapes" in text


def test_heuristic_check_names_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import heuristic

    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        heuristic.main([str(bad)])
    assert str(bad) in capsys.readouterr().err
