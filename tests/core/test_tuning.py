"""The tuning cache (runtime/core/tuning.py): round trip, keys, staleness, atomic writes, and conv2d_q8's
pickers consulting it with a fallback to their heuristics."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from runtime.core import tuning
from runtime.core.device import default_device
from runtime.core.manifest import load_manifest
from runtime.core.select import device_unfit
from runtime.families.q8ta_conv2d.op import TUNING_KEYS, run_conv2d_q8, shape_class
from runtime.oplib.gemm_q8 import emulated

MANIFEST = load_manifest()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Caches go to tmp_path, never into the developer's build/tuning."""
    monkeypatch.setattr(tuning, "cache_path", lambda manifest, name: tmp_path / f"{tuning.slug(name)}.json")
    monkeypatch.delenv(tuning.ENV, raising=False)
    return tmp_path


def _fake_device(name: str = "Fake GPU 9000", driver: str = "1.2.3") -> Any:
    return SimpleNamespace(info=SimpleNamespace(name=name, vendor_id=0x10DE, driver_name="fake", driver_info=driver))


def test_round_trip_and_keys(cache_dir: Path) -> None:
    dev = _fake_device()
    cache = tuning.load(dev, MANIFEST).copy()
    assert cache.lookup("op", "class") is None
    cache.record("op", "class", "variant_a", seconds=1.5e-3)
    cache.record("op", "other", {"im2col": "x", "gemm": "y"})
    path = cache.save()
    assert path == cache_dir / "fake-gpu-9000.json"
    doc = json.loads(path.read_text())
    assert doc["format"] == tuning.FORMAT and doc["key"]["manifest_digest"] == MANIFEST.digest
    assert doc["key"]["driver"] == "fake 1.2.3" and doc["entries"]["op"]["class"]["seconds"] == 1.5e-3
    assert tuning.lookup(dev, MANIFEST, "op", "class") == "variant_a"
    assert tuning.lookup(dev, MANIFEST, "op", "other") == {"im2col": "x", "gemm": "y"}
    assert tuning.lookup(dev, MANIFEST, "op", "missing") is None and tuning.lookup(dev, MANIFEST, "nope", "c") is None
    # another driver, or another build, sees none of it
    assert tuning.lookup(_fake_device(driver="1.2.4"), MANIFEST, "op", "class") is None
    other_build = SimpleNamespace(path=MANIFEST.path, digest="0" * 64)
    assert tuning.lookup(dev, other_build, "op", "class") is None  # type: ignore[arg-type]
    # a second writer keeps the entries it did not touch
    again = tuning.load(dev, MANIFEST).copy()
    again.record("op", "class", "variant_b")
    again.save()
    assert tuning.lookup(dev, MANIFEST, "op", "class") == "variant_b"
    assert tuning.lookup(dev, MANIFEST, "op", "other") == {"im2col": "x", "gemm": "y"}
    assert not list(cache_dir.glob("*.tmp")), "the atomic write left a temporary file"


def test_disabled_and_environment(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = _fake_device()
    cache = tuning.load(dev, MANIFEST).copy()
    cache.record("op", "class", "v")
    cache.save()
    with tuning.disabled():
        assert tuning.lookup(dev, MANIFEST, "op", "class") is None
    assert tuning.lookup(dev, MANIFEST, "op", "class") == "v"
    for off in ("off", "0", "false"):
        monkeypatch.setenv(tuning.ENV, off)
        assert tuning.lookup(dev, MANIFEST, "op", "class") is None
    monkeypatch.setenv(tuning.ENV, "on")
    assert tuning.lookup(dev, MANIFEST, "op", "class") == "v"


def test_disabled_is_per_thread(cache_dir: Path) -> None:
    dev = _fake_device()
    cache = tuning.load(dev, MANIFEST).copy()
    cache.record("op", "class", "v")
    cache.save()
    seen: list[Any] = []
    with tuning.disabled():
        thread = threading.Thread(target=lambda: seen.append(tuning.lookup(dev, MANIFEST, "op", "class")))
        thread.start()
        thread.join()
    assert seen == ["v"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": 99}', '{"format": 1, "entries": {"op": {"c": 3}}}',
                                  '{"format": 1, "entries": {"op": {"c": {"choice": ""}}}}'])
def test_a_broken_file_is_ignored_with_a_warning(cache_dir: Path, text: str) -> None:
    dev = _fake_device(name=f"broken {abs(hash(text))}")
    (cache_dir / f"{tuning.slug(dev.info.name)}.json").write_text(text)
    with pytest.warns(UserWarning, match="tuning cache ignored"):
        assert tuning.lookup(dev, MANIFEST, "op", "c") is None


def test_bad_records_are_refused(cache_dir: Path) -> None:
    cache = tuning.load(_fake_device(), MANIFEST).copy()
    bad: list[tuple[str, str, Any]] = [("", "c", "v"), ("op", "", "v"), ("op", "c", ""), ("op", "c", 3),
                                       ("op", "c", {"a": 1})]
    for op, cls, choice in bad:
        with pytest.raises(ValueError):
            cache.record(op, cls, choice)
    with pytest.raises(TypeError):
        cache.record("op", "c", "v", seconds=object())
    assert cache.entries == {}


def test_a_failed_write_leaves_the_old_file(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = _fake_device()
    cache = tuning.load(dev, MANIFEST).copy()
    cache.record("op", "c", "old")
    path = cache.save()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tuning.os, "replace", boom)
    cache.record("op", "c", "new")
    with pytest.raises(OSError):
        cache.save()
    assert json.loads(path.read_text())["entries"]["op"]["c"]["choice"] == "old"
    assert not list(cache_dir.glob("*.tmp"))


def test_shape_classes() -> None:
    assert shape_class("im2col", K4=144, layout="4w4c") == "4w4c K4~128"
    assert shape_class("gemm", K4=1, M=3136, OCg=64, scale_dtype="float16") == "M~2048 N~64 K4~1 float16"
    assert shape_class("gemm", K4=128, M=4096, OCg=64, scale_dtype="float32") != \
        shape_class("gemm", K4=128, M=2048, OCg=64, scale_dtype="float32")
    with pytest.raises(ValueError, match="role"):
        shape_class("linear", K4=1)


# -- conv2d_q8's pickers ------------------------------------------------------------------------------------

def _conv_case() -> tuple[tuple[Any, ...], dict[str, Any]]:
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(1, 8, 6, 6), dtype=np.int8)
    w = rng.integers(-128, 128, size=(8, 8, 3, 3), dtype=np.int8)
    kw = {"x_scale": 0.05, "x_zp": 2, "out_scale": 2.0, "out_zp": 1, "padding": 1}
    return (x, w, np.full(8, 0.01, np.float32), np.zeros(8, np.float32)), kw


def _classes() -> dict[str, str]:
    # the call above: M = 36 pixels, OCg = 8, K = 8 * 9 = 72 -> K4 = 18, 4w4c input, float32 scales
    return {"im2col": shape_class("im2col", K4=18, layout="4w4c"),
            "gemm": shape_class("gemm", K4=18, M=36, OCg=8, scale_dtype="float32")}


def _write(entries: dict[str, str]) -> None:
    dev = default_device()
    cache = tuning.load(dev, MANIFEST).copy()
    for role, name in entries.items():
        cache.record(TUNING_KEYS[role], _classes()[role], name)
    cache.save()


def test_conv_pickers_use_the_cache_and_fall_back(cache_dir: Path) -> None:
    args, kw = _conv_case()
    dev = default_device()
    heuristic = run_conv2d_q8(*args, **kw)
    want = heuristic.output
    runnable = [e for e in MANIFEST.entries(role="gemm") if e.axes.get("dtype") == "float32" and not emulated(e.axes)
                and not dev.supports(e.features) and not device_unfit(e, dev)]  # emulated: never obeyed
    gemm = next(e.name for e in runnable if e.name != heuristic.gemm_variant)
    im2col = next(n for n in MANIFEST.names(role="im2col") if n != heuristic.im2col_variant
                  and MANIFEST.variants[n].axes.get("input_layout") in ("generic", "4w4c"))
    _write({"im2col": im2col, "gemm": gemm})
    tuned = run_conv2d_q8(*args, **kw)
    assert (tuned.im2col_variant, tuned.gemm_variant) == (im2col, gemm)
    assert np.array_equal(tuned.output, want)  # another variant, the same result
    with tuning.disabled():
        again = run_conv2d_q8(*args, **kw)
    assert (again.im2col_variant, again.gemm_variant) == (heuristic.im2col_variant, heuristic.gemm_variant)
    # a forced variant wins over the cache
    forced = run_conv2d_q8(*args, **kw, gemm_variant=heuristic.gemm_variant)
    assert forced.gemm_variant == heuristic.gemm_variant


def _unusable_gemms() -> list[str]:
    dev = default_device()
    out = ["q8ta_gemm_no_such_variant", next(iter(MANIFEST.names(role="im2col")))]  # missing; wrong role
    out += [e.name for e in MANIFEST.entries(role="gemm") if e.axes.get("dtype") == "float16"][:1]  # wrong scales
    unfit = [e.name for e in MANIFEST.entries(role="gemm") if dev.supports(e.features) or device_unfit(e, dev)]
    return out + unfit[:1]  # one the device cannot run (a coopmat GEMM on lavapipe)


@pytest.mark.parametrize("name", _unusable_gemms())
def test_an_entry_that_cannot_serve_the_call_falls_back(cache_dir: Path, name: str) -> None:
    args, kw = _conv_case()
    heuristic = run_conv2d_q8(*args, **kw)
    _write({"gemm": name, "im2col": "q8ta_im2col_no_such_variant"})
    got = run_conv2d_q8(*args, **kw)
    assert (got.im2col_variant, got.gemm_variant) == (heuristic.im2col_variant, heuristic.gemm_variant)
