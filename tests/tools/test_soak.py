"""A short in-process run of the soak tool (runtime/soak.py), and proof that it notices what it is for:
wrong results, raising calls and leaked Vulkan objects."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest

from runtime.core.device import default_device
from runtime.core.manifest import load_manifest
from runtime.tools import soak


def run_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    rc = soak.main(argv, out=out)
    return rc, out.getvalue()


def counts(text: str, label: str) -> dict[str, int]:
    line = next(ln for ln in text.splitlines() if ln.startswith(label))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("objects", 1)[1])}


def test_short_soak_is_clean() -> None:
    rc, text = run_main(["--calls", "150", "--seed", "3"])
    assert rc == 0, text
    assert "mismatches:  0" in text and "errors:      0" in text, text
    start, end = counts(text, "start:"), counts(text, "end:")
    assert start.keys() == end.keys() and "buffers" in start and "descriptor_pools" in start
    # the warm-up runs every GEMM variant and layout; the caches grow after it only by im2col pipelines
    # specialized for a kernel size or stride first seen later (q8ta_conv2d.im2col.spec_for), never by a variant
    new_keys = int(re.search(r"new pipeline keys after warm-up: (\d+) \(0 new variants\)", text).group(1))  # type: ignore[union-attr]
    grown = {k: end[k] - start[k] for k in end if end[k] != start[k]}
    # other tests in the same process may have built some of those pipelines already (a shared device)
    assert set(grown) <= {"pipelines", "tracked"}, text
    assert grown.get("pipelines", 0) == grown.get("tracked", 0) <= new_keys, text
    assert end["buffers"] == start["buffers"] == 0
    assert "object growth: none" in text
    assert len(re.findall(r"^\s+\d+/150 calls", text, re.M)) == 10, "a progress line every 10%"


def test_random_cases_cover_the_space() -> None:
    rng = np.random.default_rng(0)
    layouts = sorted(load_manifest().layouts)
    cases = [soak.random_case(rng, layouts) for _ in range(300)]
    assert {c["layout"] for c in cases} == set(layouts)
    assert {c["activation"] for c in cases} == {"none", "relu"}
    assert {c["scale_dtype"] for c in cases} == {"float32", "float16"}
    assert any(c["groups"] == c["C_in"] > 1 for c in cases), "depthwise"
    assert any(1 < c["groups"] < c["C_in"] for c in cases), "grouped"
    assert any(c["C_in"] % 4 for c in cases) and any(max(c["dilation"]) > 1 for c in cases)
    assert {c["x_zp"] for c in cases} >= {-128, 127}


def test_soak_counts_wrong_results(monkeypatch: pytest.MonkeyPatch) -> None:
    real = soak.conv2d_q8_reference

    def off_by_two(*args: Any, **kwargs: Any) -> Any:
        q, v = real(*args, **kwargs)
        q = q.copy()
        q.flat[0] = q.flat[0] + 2 if q.flat[0] < 0 else q.flat[0] - 2
        return q, v

    monkeypatch.setattr(soak, "conv2d_q8_reference", off_by_two)
    rc, text = run_main(["--calls", "6", "--warmup", "0"])
    assert rc == 1 and "mismatches:  6" in text and "SOAK FAILED" in text, text
    assert "rerun: python -m runtime.tools.repro --level conv" in text


def test_soak_counts_raising_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("device lost")

    monkeypatch.setattr(soak, "run_conv2d_q8", broken)
    rc, text = run_main(["--calls", "3", "--warmup", "0"])
    assert rc == 1 and "errors:      3" in text and "device lost" in text, text


def test_soak_notices_leaked_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    leaked: list[Any] = []
    real = soak.run_conv2d_q8

    def leaky(*args: Any, **kwargs: Any) -> Any:
        leaked.append(default_device().alloc(256))  # kept alive: one more live buffer per call
        return real(*args, **kwargs)

    monkeypatch.setattr(soak, "run_conv2d_q8", leaky)
    try:
        rc, text = run_main(["--calls", "5", "--warmup", "0"])
    finally:
        for buf in leaked:
            buf.free()
    assert rc == 1 and '"buffers": 5' in text and "SOAK FAILED" in text, text
