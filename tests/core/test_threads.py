"""Every public runtime call is safe from any thread.

Calls on one Device are serialized by its lock (runtime/core/context.py); these tests hammer the
shared default device from several threads with ops and run_variant calls of different shapes
and compare every result with its oracle, race pipeline creation, close a device under use, and
let the GC free a buffer on one thread while another holds the device.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device, Step, default_device
from runtime.core.errors import ShaderkitError
from runtime.core.manifest import VariantEntry
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference
from tests.core.test_runtime import SHADERS, compile_variant

THREADS = 6
JOIN_S = 120  # a deadlock fails the test instead of hanging it


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> VariantEntry:
    return compile_variant(SHADERS / "scale.comp", tmp_path_factory.mktemp("threads"))


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run work(i) on `count` threads started together; the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "threads still running: deadlock?"
    return errors


def conv_case(seed: int) -> dict[str, Any]:
    """A small conv2d_q8 call; shapes, groups and padding vary with the seed."""
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2]))
    c_in = groups * int(rng.integers(1, 7))
    c_out = groups * int(rng.integers(1, 5))
    k = int(rng.integers(1, 4))
    h, w = int(rng.integers(k, 10)), int(rng.integers(k, 10))
    return {
        "x": rng.integers(-128, 128, (1, c_in, h, w), dtype=np.int8),
        "weight": rng.integers(-128, 128, (c_out, c_in // groups, k, k), dtype=np.int8),
        "w_scales": rng.uniform(0.005, 0.02, c_out).astype(np.float32),
        "bias": rng.standard_normal(c_out).astype(np.float32),
        "x_scale": 0.05, "x_zp": int(rng.integers(-5, 5)), "out_scale": 0.5, "out_zp": -2,
        "groups": groups, "padding": int(rng.integers(0, 2)),
    }


def check_conv(seed: int, device: Device | None = None) -> None:
    kwargs = conv_case(seed)
    want, _ = conv2d_q8_reference(**kwargs)
    got = runtime.conv2d_q8(**kwargs, device=device)
    assert got.shape == want.shape, (seed, got.shape, want.shape)
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff <= 1, f"seed {seed}: conv2d_q8 off by {diff}"


def check_scale(entry: VariantEntry, seed: int, device: Device | None = None) -> None:
    """run_variant of the scale test shader: out = x * scale + ADD, exact in float32."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    add = int(rng.integers(-50, 50))
    factor = float(rng.integers(1, 4))
    x = rng.integers(-1000, 1000, n).astype(np.float32)
    got = runtime.run_variant(entry, {"t_in": x}, {"t_out": ((n,), np.float32)}, push={"n": n, "scale": factor},
                              spec={"ADD": add, "local_size_x": 64}, groups=-(-n // 64), device=device)
    np.testing.assert_array_equal(got["t_out"], x * factor + add, err_msg=f"seed {seed}")


def test_hammer_the_default_device(scale: VariantEntry) -> None:
    """THREADS threads x many conv2d_q8 and run_variant calls of different shapes on the one
    shared default device; every answer is compared with its oracle."""
    dev = default_device()
    before = dev.live_objects()["buffers"]

    def work(i: int) -> None:
        for j in range(24):
            seed = 1000 * i + j
            if j % 2:
                check_conv(seed)
            else:
                check_scale(scale, seed)

    errors = run_threads(THREADS, work)
    assert not errors, f"{len(errors)} thread(s) failed; first: {errors[0]!r}"
    assert default_device() is dev
    gc.collect()
    assert dev.live_objects()["buffers"] == before


def test_default_device_is_one_object_across_threads() -> None:
    seen: list[Device] = []
    errors = run_threads(THREADS, lambda i: seen.append(default_device()))
    assert not errors and len(seen) == THREADS
    assert all(d is seen[0] for d in seen)


def test_concurrent_pipeline_creation_builds_each_once(scale: VariantEntry) -> None:
    """Threads asking for the same specializations at once share one pipeline each."""
    specs = [{"ADD": k, "local_size_x": 32} for k in range(6)]
    with Device() as dev:
        got: dict[int, list[Any]] = {k: [] for k in range(len(specs))}

        def work(i: int) -> None:
            for k in [*range(i % len(specs), len(specs)), *range(i % len(specs))]:
                got[k].append(dev.pipeline(scale, specs[k]))

        errors = run_threads(8, work)
        assert not errors, repr(errors[0])
        for k, pipelines in got.items():
            assert len(pipelines) == 8 and all(p is pipelines[0] for p in pipelines), f"ADD={k}: several pipelines"
        assert dev.live_objects()["pipelines"] == len(specs)
        x = np.arange(64, dtype=np.float32)
        for k, pipelines in got.items():
            with dev.alloc(x.nbytes) as out:
                dev.run([Step(pipelines[0], {0: out, 1: x}, {"n": 64, "scale": 2.0}, (2, 1, 1))])
                np.testing.assert_array_equal(out.read(np.float32), x * 2 + k)


def test_close_while_other_threads_use_the_device(scale: VariantEntry) -> None:
    """Device.close from one thread while others run on it: each call either gives the right
    answer or raises ShaderkitError("... closed"); nothing crashes, nothing is left."""
    dev = Device()
    results: list[str] = []

    def work(i: int) -> None:
        for j in range(10_000):
            try:
                if j % 3 == 0:
                    check_conv(50_000 + 100 * i + j, dev)
                else:
                    check_scale(scale, 50_000 + 100 * i + j, dev)
                results.append("ok")
            except ShaderkitError as exc:
                assert "closed" in str(exc) or "freed" in str(exc), repr(exc)
                results.append("closed")
                return

    def closer() -> None:
        deadline = time.monotonic() + 30
        while results.count("ok") < 3 * THREADS and time.monotonic() < deadline:
            time.sleep(0.01)
        dev.close()

    watcher = threading.Thread(target=closer, daemon=True)
    watcher.start()
    errors = run_threads(THREADS, work)
    watcher.join(JOIN_S)
    assert not errors, f"{len(errors)} thread(s) failed; first: {errors[0]!r}"
    assert dev.closed and results.count("closed") == THREADS and "ok" in results
    assert dev.live_objects() == dict.fromkeys(dev.live_objects(), 0)


@pytest.fixture
def held() -> Iterator[Device]:
    with Device() as dev:
        yield dev


def test_gc_on_another_thread_never_blocks_on_a_held_device(held: Device) -> None:
    """A Buffer dropped while another thread holds the device is freed later, not waited for:
    a GC finalizer must not block (it could deadlock), and nothing may leak."""
    dev = held
    baseline = dev.live_objects()["buffers"]
    dropped = threading.Event()

    def drop() -> None:
        buf = dev.alloc(64)
        with dev._ctx.lock:  # as if a long run held the device ...
            finished = threading.Event()

            def collect() -> None:  # ... while another thread's GC frees a buffer
                nonlocal buf
                del buf
                gc.collect()
                finished.set()

            other = threading.Thread(target=collect)
            other.start()
            assert finished.wait(30), "the finalizer blocked on the held device"
            other.join()
            dropped.set()

    worker = threading.Thread(target=drop)
    worker.start()
    worker.join(60)
    assert dropped.is_set()
    assert dev.live_objects()["buffers"] == baseline + 1  # deferred, still a live Vulkan object
    dev.run([])  # the next call on the device runs the deferred release
    assert dev.live_objects()["buffers"] == baseline


def test_buffers_shared_between_threads(scale: VariantEntry) -> None:
    """One input buffer read by many threads' runs at once while each writes its own output."""
    with Device() as dev:
        n = 4096
        x = np.arange(n, dtype=np.float32)
        pipeline = dev.pipeline(scale, {"local_size_x": 64})
        with dev.upload(x) as shared:

            def work(i: int) -> None:
                for j in range(20):
                    with dev.alloc(x.nbytes, fill=0) as out:
                        dev.run([Step(pipeline, {0: out, 1: shared}, {"n": n, "scale": float(i + j)}, (n // 64,))])
                        np.testing.assert_array_equal(out.read(np.float32), x * (i + j))

            errors = run_threads(THREADS, work)
        assert not errors, repr(errors[0])
