"""The benchmark suite (`python -m bench`) in a tiny form: it runs, checks what it times, writes a sane report."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import cli
from bench.measure import DeviceInputs, summarize
from bench.peer import Peer
from bench.report import slug
from bench.suite import FULL, QUICK, SUITES
from runtime.core.device import Step, default_device
from runtime.core.manifest import load_manifest

# a few variants of each kind keep the in-process run to seconds on lavapipe
TINY = ["--suite", "micro", "--reps", "2", "--warmup", "1", "--no-peer",
        "--variants", "float32_dot_t4x4_wg64,float32_int_t4x4_wg64,im2col_4w4c_wg64,im2col_generic_wg64"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
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

    roof = doc["roofline"]
    assert roof["copy_gbps"] > 0 and roof["dot_tops"] > 0
    assert {p["kind"] for p in roof["probes"]} >= {"copy", "int"}
    assert all(p["check"] == "ok" for p in roof["probes"] if p["value"] is not None)

    rows = doc["rows"]
    timed = [r for r in rows if r["stats"] is not None]
    assert {r["kind"] for r in timed} == {"gemm", "im2col", "conv", "conv-gemm-screen"}
    for r in timed:
        stats = r["stats"]
        assert stats["n"] == len(stats["samples_s"]) == 2
        assert 0 < stats["min_s"] <= stats["p10_s"] <= stats["median_s"] <= stats["p90_s"] <= stats["max_s"]
        assert r["check"] == "ok", r
        assert r["pct_roof"] is not None and r["pct_roof"] > 0
        assert (r["gbps"] if r["kind"] == "im2col" else r["tops"]) > 0
        assert r["peer_ratio"] is None  # --no-peer
    # every im2col variant kept by the filter is timed on the im2col shape, every GEMM one on the GEMM shape
    names = load_manifest().names
    im2col = {r["variant"] for r in timed if r["kind"] == "im2col"}
    assert im2col == {n for n in names(role="im2col") if "_wg64" in n}
    conv = [r for r in timed if r["kind"] == "conv"]
    assert {r["pick"] for r in conv} in ({"auto", "best-gemm"}, {"auto = best-gemm"})
    assert all(len(r["steps"]) == 2 for r in conv)


def test_results_md_has_header_and_tables(tiny_run: tuple[Path, int, str]) -> None:
    out, _, _ = tiny_run
    md = (out / "results.md").read_text()
    info = default_device().info
    assert md.startswith(f"# shaderkit benchmark: {info.name}\n")
    for needle in (f"| driver | {info.driver_name}", f"| Vulkan API | {info.api_version} |", "| date | ",
                   "## Roofline", "## Summary", "## GEMM", "## im2col", "## conv2d", "## Notes"):
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


def test_arguments() -> None:
    args = cli.parse_args(["--quick"])
    assert args.suite == "quick" and args.only == set(cli.KINDS) and (args.reps, args.warmup) == (10, 2)
    args = cli.parse_args(["--only", "gemm,conv", "--only", "im2col", "--reps", "3", "--warmup", "0"])
    assert args.only == {"gemm", "conv", "im2col"} and (args.reps, args.warmup) == (3, 0)
    for bad in (["--only", "flops"], ["--reps", "0"], ["--suite", "huge"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)
    assert slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_missing_pytorch_means_na(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    peer = Peer()
    assert not peer.available and "PyTorch" in peer.reason
    assert peer.gemm(QUICK.gemm[0], 2, 1).stats is None
    assert all(r.stats is None and r.reason for r in peer.conv(QUICK.conv[0], 2, 1))


def test_suites() -> None:
    for suite in SUITES.values():
        names = [s.name for s in (*suite.conv, *suite.im2col, *suite.gemm)]
        assert len(names) == len(set(names)), suite.name
    stem = next(s for s in FULL.conv if s.name == "rn50.stem.7x7s2")
    assert (stem.H_out, stem.W_out, stem.macs) == (112, 112, 112 * 112 * 64 * 3 * 49)
    res = {s.C_in: s.H for s in FULL.conv if s.name.startswith("rn50.res") and s.name.endswith(".3x3")}
    assert res == {64: 56, 128: 28, 256: 14, 512: 7}
    assert any(s.groups == s.C_in > 1 for s in FULL.conv)  # depthwise
    dims = [d for g in FULL.gemm for d in (g.M, g.K, g.N)]
    assert min(dims) == 256 and max(dims) == 8192
    assert any(len({g.M, g.K, g.N}) > 1 for g in FULL.gemm)
    assert all(g.K % 8 == 0 and g.N % 8 == 0 and g.M > 16 for g in FULL.gemm)  # torch._int_mm's rules
    assert max(d for g in QUICK.gemm for d in (g.M, g.K, g.N)) <= 512


def test_stats() -> None:
    s = summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 5.0, 5)
    assert 1.0 <= s.p10 <= s.median <= s.p90 <= 5.0
    with pytest.raises(ValueError):
        summarize([])


def test_device_inputs_upload_each_array_once() -> None:
    dev = default_device()
    entry = load_manifest().variant("bench_copy_wg64")
    src = np.arange(64, dtype=np.uint32)
    with DeviceInputs(dev) as inputs:
        dst = inputs.alloc(src.nbytes)
        steps = [inputs.persist(Step(dev.pipeline(entry), {0: dst, 1: src}, {"n": 16}, (1, 1, 1))) for _ in range(2)]
        bound: list[Any] = [s.buffers[1] for s in steps]
        assert bound[0] is bound[1] and not isinstance(bound[0], np.ndarray)
        dev.run(steps)
        assert np.array_equal(dst.read(np.uint32), src)


class _FakeTensor:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def contiguous(self, memory_format: Any = None) -> _FakeTensor:
        return self


class _FakeEvent:
    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing

    def record(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _FakeEvent) -> float:
        return 0.25  # ms


def _fake_torch() -> Any:
    """Just the torch API bench/peer.py uses, so the peer path runs where PyTorch/CUDA are absent."""
    from types import SimpleNamespace as NS

    def conv2d(x: _FakeTensor, w: _FakeTensor, bias: Any, stride: Any, padding: Any, dilation: Any,
               groups: int) -> _FakeTensor:
        if x.dtype == "int8":
            raise RuntimeError('"slow_conv2d_cuda" not implemented for \'Char\'')
        return x

    return NS(
        __version__="0.0-fake", version=NS(cuda="12.x"), int8="int8", float16="float16", channels_last="cl",
        backends=NS(cudnn=NS(version=lambda: 90000, benchmark=False)),
        cuda=NS(is_available=lambda: True, get_device_name=lambda i: "Fake GPU", synchronize=lambda: None,
                Event=_FakeEvent, empty_cache=lambda: None),
        randint=lambda lo, hi, size, dtype, device: _FakeTensor(dtype),
        randn=lambda *shape, dtype, device: _FakeTensor(dtype),
        _int_mm=lambda a, b: a,
        nn=NS(functional=NS(conv2d=conv2d)),
    )


def test_peer_columns_with_a_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch())
    args = [a for a in TINY if a != "--no-peer"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([*args, "--only", "gemm,conv", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert "Fake GPU" in doc["meta"]["peer"]
    rows = [r for r in doc["rows"] if r["kind"] in ("gemm", "conv") and r["stats"]]
    assert rows
    for r in rows:
        assert r["peer"]["stats"]["median_s"] == pytest.approx(0.25e-3)
        assert r["peer_ratio"] == pytest.approx(0.25e-3 / r["stats"]["median_s"])
    conv = next(r for r in rows if r["kind"] == "conv")
    assert conv["peer"]["op"] == "cudnn conv2d fp16"
    assert conv["other_peers"][0]["stats"] is None and "not implemented" in conv["other_peers"][0]["reason"]
    md = (tmp_path / "results.md").read_text()
    assert "x |" in md and "not implemented for" in md  # ours/peer ratios, and why there is no int8 peer
